"""Images as the network takes them: OpenCV arrays as RGB or gray planes in [0, 1], matched to the model's channels
the same way for hat_arch.upscale and LAM."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import hat_arch
from hat_arch import HAT, HatError
from hat_arch.image_tensor import ImageChannels, image_planes, planes_tensor
from tests.conftest import DATA, TINY_HAT

BUTTERFLY = DATA / 'Set5' / 'LRbicx4' / 'butterfly.png'


def test_planes_are_rgb_in_0_1_with_the_alpha_apart():
    bgra = np.zeros((2, 3, 4), np.uint16)
    bgra[..., 2], bgra[..., 3] = 65535, 32768  # red, half transparent
    planes, alpha, dtype = image_planes(bgra)
    assert planes.dtype == np.float32 and planes.shape == (2, 3, 3) and dtype == np.uint16
    np.testing.assert_array_equal(planes[0, 0], [1, 0, 0])
    np.testing.assert_allclose(alpha, 32768 / 65535)
    gray = np.full((2, 3), 0.25, np.float32)  # a float TIFF, as cv2 reads it
    planes, alpha, dtype = image_planes(gray)
    assert planes.shape == (2, 3, 1) and alpha is None and dtype == np.float32 and (planes == 0.25).all()
    assert planes_tensor(planes).shape == (1, 1, 2, 3)


@pytest.mark.parametrize('image_channels, model_channels', [(1, 3), (3, 1), (3, 3)])
def test_image_channels_run_the_model_as_upscale_does(image_channels, model_channels):
    torch.manual_seed(0)
    model = HAT(**{**TINY_HAT, 'in_chans': model_channels}).eval()
    image = cv2.imread(str(BUTTERFLY))[:16, :16]
    if image_channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    image = image.astype(np.float32) / 255
    expected = hat_arch.upscale(model, image, tile=None)
    with torch.no_grad():
        out = ImageChannels(model)(planes_tensor(image_planes(image)[0]))
    assert out.shape == (1, image_channels, 64, 64)
    out = out[0].permute(1, 2, 0).clamp(0, 1).numpy()
    np.testing.assert_allclose(out[..., ::-1] if image_channels == 3 else out[..., 0], expected, atol=1e-6)


def test_channels_that_do_not_match_are_one_line():
    model = HAT(**{**TINY_HAT, 'in_chans': 2})
    with pytest.raises(HatError, match='^the model takes 2-channel images; this one has 3 colour channels$'):
        ImageChannels(model)(torch.zeros(1, 3, 8, 8))
