"""hat-sr serve's start: bad checkpoints are one-line errors before anything is served; other hosts get a warning;
without -m, the built-in model is served."""
from __future__ import annotations

import subprocess

import cv2
import numpy as np
import pytest

import hat_arch
from hat_arch.checkpoint import describe, load_model
from hat_arch.cli import hat_sr_main
from hat_arch.shipped_model import SHIPPED_MODEL_NOTE, SHIPPED_MODEL_PATH
from hat_arch.web.catalogue import label
from tests.web.conftest import ENV, HAT_SR, SET5, free_port, start_server


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


@pytest.mark.slow
def test_without_a_model_the_built_in_one_is_served_and_upscales_as_the_command(tmp_path):
    gradio_client = pytest.importorskip('gradio_client')
    server = start_server(None)
    image = SET5 / 'bird.png'
    try:
        assert sum(SHIPPED_MODEL_NOTE in line for line in server.log) == 1
        client = gradio_client.Client(server.url, verbose=False, download_files=str(tmp_path))
        status, _, _, files, *_ = client.predict([gradio_client.handle_file(str(image))],
                                                 label(describe(SHIPPED_MODEL_PATH)), 'auto', 'fp32', False,
                                                 api_name='/upscale')
    finally:
        assert server.stop() == 0
    served = cv2.imread(files[0])
    expected = hat_arch.upscale(load_model(device='cpu'), cv2.imread(str(image)))
    assert served.shape == expected.shape == (4 * 72, 4 * 72, 3)  # bird.png: 72x72 LR
    assert np.abs(served.astype(int) - expected).max() <= 1  # (the server's one thread sums in another order)
