"""The page's LAM tab through its API, as a client calls it: the figure and DI equal hat-sr lam's; a box outside the
output gets its message."""
from __future__ import annotations

import json
import subprocess

import cv2
import numpy as np
import pytest

from tests.web.conftest import ENV, HAT_SR, SET5, start_server

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
gradio_client = pytest.importorskip('gradio_client')
pytestmark = pytest.mark.slow

STEPS = 6


def test_lam_tab_gives_hat_sr_lams_figure_and_di_and_refuses_a_box_outside(checkpoint, tmp_path):
    image = SET5 / 'head.png'  # 70x70: its x4 output is 280x280
    subprocess.run([str(HAT_SR), 'lam', '-m', str(checkpoint), '-i', str(image), '--box', '120,96,16,16', '--steps',
                    str(STEPS), '-o', str(tmp_path / 'cli.png')], check=True, env=ENV, capture_output=True, timeout=120)
    expected_di = json.loads((tmp_path / 'cli.json').read_text())['diffusion_index']

    server = start_server(checkpoint)
    try:
        client = gradio_client.Client(server.url, verbose=False, download_files=str(tmp_path))
        model = client.view_api(return_format='dict', print_info=False)['named_endpoints']['/lam']['parameters'][1]
        label = model['parameter_default']
        status, figure = client.predict(gradio_client.handle_file(str(image)), label, 120, 96, 16, STEPS,
                                        api_name='/lam')
        assert status.startswith(f'**DI {expected_di:.2f}** for the box x=120, y=96, 16x16')
        np.testing.assert_array_equal(cv2.imread(figure), cv2.imread(str(tmp_path / 'cli.png')))

        with pytest.raises(Exception, match=r'box x=270,y=0,w=16,h=16 reaches outside the 280x280 output'):
            client.predict(gradio_client.handle_file(str(image)), label, 270, 0, 16, STEPS, api_name='/lam')
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0
