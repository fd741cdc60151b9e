"""hat-sr serve's start: bad checkpoints are one-line errors before anything is served; other hosts get a warning."""
from __future__ import annotations

import subprocess

import pytest

from hat_arch.cli import hat_sr_main
from tests.web.conftest import ENV, HAT_SR, free_port


def test_a_missing_or_foreign_checkpoint_is_a_one_line_error(tmp_path, capsys):
    missing = tmp_path / 'missing.pth'
    assert hat_sr_main(['serve', '-m', str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f'hat-sr serve: error: {missing}: no such checkpoint or folder'
    assert hat_sr_main(['serve', '-m', str(tmp_path)]) == 2
    assert 'no HAT checkpoints (.pth or .safetensors) there' in capsys.readouterr().err


@pytest.mark.slow
def test_another_host_is_served_only_with_a_warning_and_a_bad_address_is_one_line(checkpoint):
    pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
    # 192.0.2.1 is a documentation address that no machine has: the warning, then a clean refusal to listen.
    run = subprocess.run([str(HAT_SR), 'serve', '-m', str(checkpoint), '--host', '192.0.2.1', '--port',
                          str(free_port())], capture_output=True, text=True, env=ENV, timeout=120)
    assert run.returncode == 2, run.stderr
    assert 'warning: listening on 192.0.2.1' in run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith('hat-sr serve: error: cannot listen on 192.0.2.1:')
