"""A clone passes its tests with nothing beside it, and .ci/run is the README's test command, run in such a clone."""
from __future__ import annotations

import re

from tests.conftest import DATA, GOLDEN, GOLDEN_CASES, ROOT


def test_test_data_lives_in_the_repository():
    for folder in (GOLDEN, DATA):
        assert folder.is_dir() and ROOT in folder.resolve().parents
    assert sorted(p.stem for p in GOLDEN.glob('tiny_*.pt')) == sorted(GOLDEN_CASES)
    assert (GOLDEN / 'released_state_dict_shapes.json').is_file()
    for name in ('Set5', 'Set14'):
        for kind in ('GTmod', 'LRbicx'):
            assert all(len(list((DATA / name / f'{kind}{scale}').glob('*.png'))) > 4 for scale in (2, 3, 4))


def test_nothing_reads_beside_the_checkout():
    files = [ROOT / 'README.md', *ROOT.glob('tests/**/*.py'), *ROOT.glob('benchmarks/**/*'), *ROOT.glob('options/**/*')]
    beside = [str(p.relative_to(ROOT)) for p in files
              if p.is_file() and re.search(r"\.\./shared|parent / 'shared'", p.read_text(errors='ignore'))
              and p != ROOT / 'tests' / 'test_repository.py']
    assert beside == []


def test_ci_runs_the_readme_test_commands_in_a_bare_clone():
    readme = (ROOT / 'README.md').read_text()
    block = re.search(r'## Tests\n\n```bash\n(.*?)```', readme, re.S)[1]
    readme_commands = [c.strip() for line in block.splitlines() for c in line.split('&&')]
    cpu_wheels = 'pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu'
    assert [c for c in readme_commands if c.startswith(cpu_wheels)]  # users without a GPU are told in the block
    readme_commands = [c for c in readme_commands if not c.startswith(cpu_wheels)]  # CI reaches PyPI alone
    ci = [line for line in (ROOT / '.ci' / 'run').read_text().splitlines() if line and not line.startswith('#')]
    clone = ci.index('cd "$clone"')
    assert ci[clone - 1].startswith('git clone') and ci[clone - 2].startswith('clone="$(mktemp -d)')
    assert [c for c in ci[clone + 1:] if 'pip install --upgrade pip' not in c] == readme_commands


def test_readme_is_a_front_page_whose_links_lead_somewhere():
    readme = (ROOT / 'README.md').read_text()
    assert len(readme.splitlines()) <= 250
    links = re.findall(r'\]\(([^)\s]+)\)', readme)
    local = [link for link in links if not re.match(r'[a-z]+://', link)]
    assert any(link.startswith('docs/') for link in local)
    for link in local:
        path, _, anchor = link.partition('#')
        target = ROOT / path
        assert target.is_file(), link
        if anchor:  # a heading of the page, as MkDocs' table of contents names it
            headings = re.findall(r'^#+ (.+)$', target.read_text(), re.M)
            assert anchor in [re.sub(r'[^\w\s-]', '', h).strip().lower().replace(' ', '-') for h in headings], link
