"""LAM: path end-points, locality of the attribution, completeness, the Gini/DI arithmetic, DI ordering, figure."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from hat_arch import HAT, HatError
from hat_arch.attribution import (KERNEL_EPS, blur_path, box_gradient_magnitude, diffusion_index, gaussian_blur, gini,
                                  lam)
from tests.conftest import DATA, TINY_HAT


@pytest.fixture(scope='module')
def butterfly() -> torch.Tensor:
    """Set5 butterfly, x4 bicubic LR, 64x64 RGB in [0, 1]: (3, 64, 64)."""
    bgr = cv2.imread(str(DATA / 'Set5' / 'LRbicx4' / 'butterfly.png'))
    return torch.from_numpy(bgr[..., ::-1].copy()).permute(2, 0, 1).float() / 255


def conv_sr(scale: int = 2, blur: int = 0) -> nn.Module:
    """One 3x3 conv and a pixel shuffle: output pixel (Y, X) sees input rows Y//scale +-1 and columns X//scale +-1.
    ``blur`` > 0 first averages the input over a (2 blur + 1)^2 window, widening the receptive field by ``blur``."""
    layers = [nn.Conv2d(3, 3 * scale**2, 3, 1, 1), nn.PixelShuffle(scale)]
    if blur:
        layers.insert(0, nn.AvgPool2d(2 * blur + 1, stride=1, padding=blur, count_include_pad=False))
    return nn.Sequential(*layers)


def test_path_starts_at_the_blurred_baseline_and_ends_exactly_at_the_image(butterfly):
    image = butterfly[None, :, :20, :24]
    points = list(blur_path(image, sigma=1.2, steps=5, kernel_size=9))
    assert len(points) == 6
    assert torch.allclose(points[0], gaussian_blur(image, 1.2, 9))
    assert (points[0] - image).abs().max() > 0.05
    assert torch.equal(points[-1], image)
    # blur decreases along the path: each point is closer to the image than the previous one
    distances = [float((p - image).abs().sum()) for p in points]
    assert all(a > b for a, b in zip(distances, distances[1:]))


def test_blur_is_the_authors_kernel_with_opencv_borders(butterfly):
    image = butterfly[:, :20, :24]
    sigma, size = 1.2, 9
    ax = np.arange(-(size // 2), size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    kernel = np.exp(-(xx**2 + yy**2) / (2 * (sigma + KERNEL_EPS)**2))
    expected = cv2.filter2D(image.permute(1, 2, 0).numpy(), -1, kernel / kernel.sum())
    ours = gaussian_blur(image[None], sigma, size)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def test_attribution_of_a_3x3_conv_is_zero_outside_its_neighbourhood(butterfly):
    image = butterfly[:, :16, :20]
    box = (10, 8, 6, 6)  # output columns 10..15 (+1 for the forward difference), rows 8..13 (+1)
    result = lam(conv_sr(scale=2), image, box, steps=8)
    # Input pixels that reach output rows 8..14, columns 10..16 through a 3x3 conv at scale 2.
    rows, cols = slice(8 // 2 - 1, 14 // 2 + 2), slice(10 // 2 - 1, 16 // 2 + 2)
    outside = result.attribution.clone()
    outside[:, rows, cols] = 0
    assert torch.count_nonzero(outside) == 0
    inside = result.lam_map[rows, cols]
    # every edge row and column of the neighbourhood is used, so it is exactly the neighbourhood
    assert inside[0].max() > 0 and inside[-1].max() > 0 and inside[:, 0].max() > 0 and inside[:, -1].max() > 0
    assert result.lam_map.max() == 1


def test_attribution_adds_up_to_the_target_change_along_the_path(butterfly):
    image = butterfly[None, :, :16, :16]
    box, net = (4, 6, 8, 8), conv_sr(scale=2)
    result = lam(net, image, box, steps=100, batch_size=50)
    with torch.no_grad():
        change = box_gradient_magnitude(net(image), box) - box_gradient_magnitude(net(gaussian_blur(image, 1.2)), box)
    # right Riemann sum: 1.1% off at 100 steps
    assert float(result.attribution.sum()) == pytest.approx(float(change), rel=0.02)


def test_batched_path_steps_give_the_same_attribution(butterfly):
    image, box, net = butterfly[:, :16, :16], (4, 6, 8, 8), conv_sr(scale=2)
    one = lam(net, image, box, steps=7)
    batched = lam(net, image, box, steps=7, batch_size=3)
    torch.testing.assert_close(batched.attribution, one.attribution, rtol=1e-4, atol=1e-6)
    assert batched.diffusion_index == pytest.approx(one.diffusion_index, abs=1e-3)


def test_progress_reports_the_path_steps_done(butterfly):
    reports = []
    lam(conv_sr(scale=2), butterfly[:, :16, :16], (4, 6, 8, 8), steps=7, batch_size=3,
        progress=lambda done, total: reports.append((done, total)))
    assert reports == [(0, 7), (3, 7), (6, 7), (7, 7)]


def test_gini_and_diffusion_index_on_hand_made_maps():
    assert gini(torch.ones(8, 8)) == pytest.approx(0)
    assert diffusion_index(torch.full((8, 8), 0.3)) == pytest.approx(100)
    one_hot = torch.zeros(8, 8)
    one_hot[3, 5] = 1
    assert gini(one_hot) == pytest.approx(63 / 64)
    assert diffusion_index(one_hot) == pytest.approx(100 / 64)
    assert gini(torch.tensor([0.0, 0.0, 1.0, 1.0])) == pytest.approx(0.5)
    # the mean absolute difference definition: sum |a_i - a_j| / (2 n^2 mean)
    values = torch.rand(50, dtype=torch.float64)
    pairwise = (values[:, None] - values[None, :]).abs().sum() / (2 * 50**2 * values.mean())
    assert gini(values) == pytest.approx(float(pairwise))
    assert math.isnan(gini(torch.zeros(4)))
    with pytest.raises(ValueError):
        gini(torch.tensor([1.0, -1.0]))


def test_wider_receptive_field_gives_a_higher_diffusion_index(butterfly):
    image, box = butterfly[:, :32, :32], (24, 24, 16, 16)
    narrow = lam(conv_sr(scale=4), image, box, steps=5)
    wide = lam(conv_sr(scale=4, blur=3), image, box, steps=5)
    assert 0 < narrow.diffusion_index < wide.diffusion_index < 100
    assert torch.count_nonzero(wide.lam_map) > torch.count_nonzero(narrow.lam_map)


def test_tiny_hat_uses_more_pixels_than_a_3x3_conv(butterfly):
    image, box = butterfly[:, :32, :32], (56, 56, 16, 16)
    hat = HAT(**TINY_HAT).train()
    hat_result = lam(hat, image, box, steps=3)
    conv_result = lam(conv_sr(scale=4), image, box, steps=3)
    assert conv_result.diffusion_index < hat_result.diffusion_index < 100
    assert hat.training  # the mode is restored
    assert hat_result.output.shape == (3, 128, 128)
    assert all(p.grad is None for p in hat.parameters())


def test_bad_settings_are_one_line_errors(butterfly):
    net = conv_sr(scale=2)
    with pytest.raises(HatError, match=r'box x=30,y=0,w=4,h=4 reaches outside the 32x32'):
        lam(net, butterfly[:, :16, :16], (30, 0, 4, 4), steps=1)
    with pytest.raises(HatError, match='kernel size must be a positive odd number'):
        lam(net, butterfly, (0, 0, 4, 4), kernel_size=8)
    with pytest.raises(HatError, match=r'image must be \(c, h, w\)'):
        lam(net, butterfly[0], (0, 0, 4, 4))


def test_figure_shows_four_panels_with_the_box(butterfly):
    result = lam(conv_sr(scale=2), butterfly[:, :16, :20], (10, 8, 6, 6), steps=2)
    figure = result.figure()
    strip, gap = 22, 4
    assert figure.dtype == np.uint8 and figure.shape == (strip + 32, 4 * 40 + 3 * gap, 3)
    # the box outline, red in BGR, at the same place in every panel
    for panel in range(4):
        left = panel * (40 + gap)
        assert figure[strip + 8, left + 10].tolist() == [0, 0, 255]
        assert figure[strip + 13, left + 15].tolist() == [0, 0, 255]
    # the LAM panel is reddest (least green) where the attribution is largest
    lam_panel = figure[strip:, 40 + gap:2 * (40 + gap) - gap].astype(int)
    y, x = np.unravel_index(int(result.lam_map.argmax()), result.lam_map.shape)
    hot = lam_panel[2 * y:2 * y + 2, 2 * x:2 * x + 2]
    assert hot[..., 1].mean() < lam_panel[..., 1].mean()
