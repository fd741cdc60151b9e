"""The LAM tab's aiming view: the input scaled up by a whole factor, a click mapped back through it to the box it
places (centred on the clicked pixel's output, kept inside), and that box drawn where it lies."""
from __future__ import annotations

import numpy as np
import pytest

from hat_arch.web.aim import AIM_SIZE, BOX_COLOUR, aim_factor, aim_view, box_at, clicked_pixel, rgb8


def test_small_inputs_are_scaled_by_a_whole_factor_to_about_the_aim_size_and_large_ones_kept():
    assert aim_factor(70, 70) == 7 and aim_factor(70, 30) == 7  # 490 px: the longer side decides
    assert aim_factor(32, 20) == 16 and aim_factor(200, 120) == 2
    assert aim_factor(AIM_SIZE, 10) == 1 and aim_factor(3000, 2000) == 1


def test_the_box_is_centred_on_the_clicked_pixels_output_and_kept_inside():
    assert box_at(50, 20, 16, 4, 70, 50) == (50 * 4 + 2 - 8, 20 * 4 + 2 - 8)
    assert box_at(0, 0, 16, 4, 70, 50) == (0, 0)
    assert box_at(69, 49, 16, 4, 70, 50) == (70 * 4 - 16, 50 * 4 - 16)
    assert box_at(10, 10, 32, 4, 70, 50) == (40 + 2 - 16, 40 + 2 - 16)
    assert box_at(5, 5, 16, 2, 70, 50) == (10 + 1 - 8, 10 + 1 - 8)  # x2


@pytest.mark.parametrize('factor', [1, 7, 16])
def test_a_click_anywhere_inside_a_scaled_pixel_is_that_pixel(factor):
    for offset in (0, factor - 1):
        assert clicked_pixel((50 * factor + offset, 20 * factor + offset), factor) == (50, 20)


@pytest.mark.parametrize(('width', 'height', 'scale'), [(70, 70, 4), (40, 24, 2), (600, 300, 4)])
def test_the_box_is_drawn_on_the_input_pixels_that_make_its_output(width, height, scale):
    image = np.zeros((height, width, 3), np.uint8)
    x, y, side = 8 * scale, 4 * scale, 4 * scale  # output box over input pixels 8-11, 4-7
    view = aim_view(image, scale, (x, y, side))
    factor = aim_factor(width, height)
    assert view.shape == (height * factor, width * factor, 3)
    drawn = np.argwhere((view == BOX_COLOUR).all(axis=2))
    thickness = max(2, -(-max(view.shape[:2]) // AIM_SIZE))
    (top, left), (bottom, right) = drawn.min(axis=0), drawn.max(axis=0)
    # The outline runs along the edges of input pixels 8..11 x 4..7 scaled, give or take its thickness.
    assert abs(left - 8 * factor) <= thickness and abs(right - (12 * factor - 1)) <= thickness
    assert abs(top - 4 * factor) <= thickness and abs(bottom - (8 * factor - 1)) <= thickness
    assert not view[(4 + 1) * factor + thickness:(8 - 1) * factor - thickness,
                    (8 + 1) * factor + thickness:(12 - 1) * factor - thickness].any()  # an outline, not a fill


def test_inputs_of_every_kind_become_8_bit_rgb():
    bgr16 = np.zeros((2, 3, 3), np.uint16)
    bgr16[..., 0] = 65535  # blue
    assert rgb8(bgr16)[0, 0].tolist() == [0, 0, 255]
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 2] = 200  # red
    assert rgb8(bgra)[0, 0].tolist() == [200, 0, 0]
    assert rgb8(np.full((2, 3), 0.5, np.float32))[0, 0].tolist() == [128, 128, 128]
    assert rgb8(np.full((2, 3, 2), 7, np.uint8)).shape == (2, 3, 3)
