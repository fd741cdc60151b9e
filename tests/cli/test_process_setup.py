"""The commands set their process up before torch loads, and ``hat-sr --help`` does not load torch at all.

The slow cases start a fresh interpreter with a probe (a ``sitecustomize`` module) that records the OpenMP wait policy
in the environment at the moment torch is first imported: OpenMP reads it then, and never again.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hat_arch import process_setup

ROOT = Path(__file__).resolve().parents[2]
PROBE = '''
import atexit, importlib.abc, os, sys
seen = []
class TorchImportProbe(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' and not seen:
            seen.append(os.environ.get('OMP_WAIT_POLICY', 'unset'))
sys.meta_path.insert(0, TorchImportProbe())
atexit.register(lambda: print('PROBE:', seen[0] if seen else 'torch not imported', file=sys.stderr))
'''
CONSOLE_SCRIPT = 'import sys; from hat_arch_launcher import {0}; sys.argv[0] = "{1}"; sys.exit({0}())'


def probe(tmp_path: Path, args: list[str], **environment: str) -> tuple[str, subprocess.CompletedProcess]:
    """What the probe saw when ``python *args`` imported torch (or that it never did), and the process."""
    (tmp_path / 'sitecustomize.py').write_text(PROBE)
    env = {key: value for key, value in os.environ.items() if key != 'OMP_WAIT_POLICY'}
    env.update(environment, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    result = subprocess.run([sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    seen = [line for line in result.stderr.splitlines() if line.startswith('PROBE:')][-1].removeprefix('PROBE: ')
    return seen, result


@pytest.mark.slow
@pytest.mark.parametrize('args', [['-c', CONSOLE_SCRIPT.format('basicsr_main', 'basicsr'), 'train', '-opt', 'x.yml'],
                                  ['-c', CONSOLE_SCRIPT.format('hat_sr_main', 'hat-sr'), 'upscale', '-m', 'x.pth',
                                   '-o', 'out', str(ROOT / 'datasets' / 'Set5' / 'LRbicx4' / 'head.png')],
                                  ['-m', 'hat_arch.train', '-opt', 'x.yml'], ['-m', 'hat_arch.test', '-opt', 'x.yml'],
                                  ['-c', CONSOLE_SCRIPT.format('hat_yolo_main', 'hat-yolo'), 'val', 'model=x.yaml']],
                         ids=['basicsr', 'hat-sr', 'python -m hat_arch.train', 'python -m hat_arch.test', 'hat-yolo'])
def test_commands_load_torch_with_passive_waiting(tmp_path, args):  # (no valid file: each stops at once)
    (tmp_path / 'x.pth').write_bytes(b'not a checkpoint')  # hat-sr loads torch only to read a checkpoint
    assert probe(tmp_path, args)[0] == 'PASSIVE'


@pytest.mark.slow
def test_the_users_wait_policy_is_kept(tmp_path):
    assert probe(tmp_path, ['-m', 'hat_arch.train', '-opt', 'x.yml'], OMP_WAIT_POLICY='ACTIVE')[0] == 'ACTIVE'


@pytest.mark.slow
def test_importing_hat_arch_elsewhere_leaves_the_policy_alone(tmp_path):
    assert probe(tmp_path, ['-c', 'import hat_arch; hat_arch.HAT'])[0] == 'unset'  # (HAT loads torch)


@pytest.mark.slow
@pytest.mark.parametrize('main, name', [('hat_sr_main', 'hat-sr'), ('basicsr_main', 'basicsr')])
def test_help_does_not_load_torch(tmp_path, main, name):
    seen, result = probe(tmp_path, ['-c', CONSOLE_SCRIPT.format(main, name), '--help'])
    assert result.returncode == 0 and result.stdout.startswith(f'usage: {name} ')
    assert seen == 'torch not imported'


@pytest.mark.parametrize('orig_argv, expected', [
    (['python', '-m', 'hat_arch.train', '-opt', 'x.yml'], True),
    (['python3', '-X', 'importtime', '-W', 'ignore', '-u', '-mhat_arch.test'], True),
    (['python', '-m', 'pytest', '-m', 'hat_arch.train'], False),
    (['python', '-c', 'pass', '-m', 'hat_arch.train'], False),
    (['python', 'script.py', '-m', 'hat_arch.train'], False),
    (['python', '-m'], False),
])
def test_module_commands_are_told_from_the_interpreters_own_options(monkeypatch, orig_argv, expected):
    monkeypatch.setattr(sys, 'orig_argv', orig_argv)
    assert process_setup.started_as_module_command() is expected
