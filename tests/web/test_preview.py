"""The slider's input side: inputs a browser cannot show get a PNG preview that keeps what the image holds."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install -e '.[web]'")

from hat_arch.image_io import read_image  # noqa: E402
from hat_arch.web.app import _preview  # noqa: E402


def test_a_float_tiff_input_gets_a_faithful_png_preview(tmp_path):
    # Written as read, its [0, 1] values went into an 8-bit PNG unscaled: a black preview beside a correct result.
    image = np.random.default_rng(0).random((6, 5, 3), dtype=np.float32)
    source = tmp_path / 'in.tif'
    assert cv2.imwrite(str(source), image)
    preview = read_image(_preview(source))
    assert preview.dtype == np.uint16
    np.testing.assert_allclose(preview / 65535.0, read_image(source), atol=1e-4)
