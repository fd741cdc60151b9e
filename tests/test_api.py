"""hat_arch.upscale: numpy images in OpenCV's layout, exact to the reference network, tiles that fit in memory."""
from __future__ import annotations

from unittest import mock

import cv2
import numpy as np
import pytest
import torch

import hat_arch
from hat_arch import HAT, HatError, inference
from tests.conftest import load_golden


def golden_model(name: str) -> tuple[HAT, dict]:
    case = load_golden(name)
    model = HAT(**case['config']).eval()
    model.load_state_dict(case['params'])
    return model, case


@pytest.fixture(scope='module')
def tiny():
    return golden_model('tiny_x4')[0]


def to_bgr(x: torch.Tensor) -> np.ndarray:
    """(1, 3, h, w) RGB tensor -> (h, w, 3) BGR float32, as cv2 would hold it."""
    return np.ascontiguousarray(x[0].permute(1, 2, 0).numpy()[..., ::-1])


def network(model: HAT, image: np.ndarray) -> np.ndarray:
    """The network on an (h, w, c) float image in the model's channel order, no tiles, unclipped."""
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None])[0].permute(1, 2, 0).numpy()


def test_matches_the_reference_output_on_an_odd_size():
    model, case = golden_model('tiny_x4')
    out = hat_arch.upscale(model, to_bgr(case['input_odd']), tile=None)
    expected = to_bgr(case['output_odd_reflect_pad'].clamp(0, 1))
    assert out.dtype == np.float32 and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)


def test_a_model_in_training_mode_runs_in_eval_mode_and_keeps_its_mode():
    # A network from HAT(...) or build_network starts in training mode, where drop-path (HAT's default
    # drop_path_rate is 0.1) makes every run random; the API must not depend on the caller's mode.
    case = load_golden('tiny_x4')
    model = HAT(**{**case['config'], 'drop_path_rate': 0.5})
    model.load_state_dict(case['params'])
    image = to_bgr(case['input_odd'])
    out = hat_arch.upscale(model, image, tile=None)
    assert model.training
    np.testing.assert_allclose(out, to_bgr(case['output_odd_reflect_pad'].clamp(0, 1)), atol=1e-5, rtol=0)


def test_uint8_and_uint16_keep_their_dtype_and_range(tiny):
    rng = np.random.default_rng(0)
    image16 = rng.integers(0, 65536, (11, 9, 3), dtype=np.uint16)
    out16 = hat_arch.upscale(tiny, image16)
    expected = np.clip(network(tiny, image16[..., ::-1].astype(np.float32) / 65535)[..., ::-1], 0, 1)
    assert out16.dtype == np.uint16 and out16.shape == (44, 36, 3)
    np.testing.assert_allclose(out16 / 65535, expected, atol=1e-5)
    assert (out16 % 257 != 0).any()  # 16-bit precision, not 8-bit values scaled up

    out8 = hat_arch.upscale(tiny, (image16 >> 8).astype(np.uint8))
    assert out8.dtype == np.uint8 and out8.shape == (44, 36, 3)


def test_gray_through_a_colour_model_stays_gray(tiny):
    gray = np.random.default_rng(1).random((10, 12), dtype=np.float32)
    out = hat_arch.upscale(tiny, gray)
    assert out.shape == (40, 48)
    expected = np.clip(network(tiny, np.repeat(gray[..., None], 3, axis=2)).mean(2), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert hat_arch.upscale(tiny, gray[..., None]).shape == (40, 48, 1)


def test_a_gray_model_takes_gray_directly_and_colour_per_channel():
    model, case = golden_model('tiny_x4_gray')
    gray = case['input_odd'][0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(hat_arch.upscale(model, gray[..., 0]),
                               case['output_odd_reflect_pad'][0, 0].clamp(0, 1).numpy(), atol=1e-5)
    colour = np.random.default_rng(2).random((9, 10, 3), dtype=np.float32)
    out = hat_arch.upscale(model, colour)
    for channel in range(3):
        expected = np.clip(network(model, colour[..., channel:channel + 1])[..., 0], 0, 1)
        np.testing.assert_allclose(out[..., channel], expected, atol=1e-5)


def test_alpha_is_upscaled_and_kept(tiny):
    rng = np.random.default_rng(3)
    bgra = rng.integers(0, 256, (8, 10, 4), dtype=np.uint8)
    bgra[..., 3] = 0
    bgra[2:6, 3:8, 3] = 255  # an opaque rectangle on a transparent background
    out = hat_arch.upscale(tiny, bgra, alpha='model')
    assert out.shape == (32, 40, 4)
    np.testing.assert_array_equal(out[..., :3], hat_arch.upscale(tiny, bgra[..., :3]))
    alpha = np.repeat(bgra[..., 3:] / np.float32(255), 3, axis=2)
    expected = np.rint(np.clip(network(tiny, alpha).mean(2), 0, 1) * 255)
    np.testing.assert_allclose(out[..., 3], expected, atol=1)

    bicubic = hat_arch.upscale(tiny, bgra, alpha='bicubic')[..., 3]
    expected = cv2.resize(bgra[..., 3] / np.float32(255), (40, 32), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_allclose(bicubic, np.rint(np.clip(expected, 0, 1) * 255), atol=1)


def test_constant_alpha_is_copied_without_running_the_network(tiny):
    bgra = np.full((6, 7, 4), 200, dtype=np.uint8)
    with mock.patch.object(inference, 'run_network', wraps=inference.run_network) as run:
        out = hat_arch.upscale(tiny, bgra)
    assert run.call_count == 1  # colour only
    assert (out[..., 3] == 200).all()


def test_settings_are_passed_to_the_one_implementation(tiny):
    fake = lambda net, x, scale, *args: x.repeat_interleave(scale, -2).repeat_interleave(scale, -1)  # noqa: E731
    with mock.patch.object(inference, 'run_network', side_effect=fake) as run:
        out = hat_arch.upscale(tiny, np.zeros((5, 6, 3), np.uint8), tile=8, tile_pad=4, ensemble=True)
    assert out.shape == (20, 24, 3)
    assert run.call_args.args[2:6] == (4, 8, 4, True)


def test_progress_covers_the_colour_and_alpha_runs_of_an_image_as_one(tiny):
    bgra = np.random.default_rng(2).integers(0, 256, (12, 20, 4), dtype=np.uint8)  # alpha varies: the network runs it
    reports = []
    hat_arch.upscale(tiny, bgra, tile=8, tile_pad=2, progress=lambda done, total: reports.append((done, total)))
    # 2 x 3 tiles for the colour, then as many for the alpha plane; counted as 12 from the start.
    assert reports == [(done, 12) for done in range(7)] + [(done, 12) for done in range(6, 13)]


def test_progress_starts_over_when_out_of_memory_makes_the_tiles_smaller(tiny):
    reports = []

    def forward(x):
        if max(x.shape[-2:]) > 16:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return HAT.forward(tiny, x)

    with mock.patch.object(tiny, 'forward', side_effect=forward):
        hat_arch.upscale(tiny, np.zeros((24, 24, 3), np.float32), tile=None, tile_pad=4,
                         progress=lambda *report: reports.append(report))
    assert reports == [(0, 1)] + [(done, 9) for done in range(10)]  # the whole image failed; then 3 x 3 tiles of 8


def test_out_of_memory_is_retried_with_smaller_tiles(tiny):
    image = np.random.default_rng(5).random((24, 24, 3), dtype=np.float32)
    sizes = []

    def forward(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 16:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return HAT.forward(tiny, x)

    with mock.patch.object(tiny, 'forward', side_effect=forward):
        out = hat_arch.upscale(tiny, image, tile=None, tile_pad=4)
        assert sizes[0] == 24 and max(sizes[1:]) <= 16  # whole image, then 8-pixel tiles (+ context)
        np.testing.assert_allclose(out, hat_arch.upscale(tiny, image, tile=8, tile_pad=4), atol=1e-6)

        with pytest.raises(HatError, match='out of memory .* even with 8-pixel tiles'):
            hat_arch.upscale(tiny, image, tile=8, tile_pad=12)


def test_other_errors_are_not_taken_for_out_of_memory(tiny):
    with mock.patch.object(tiny, 'forward', side_effect=RuntimeError('boom')):
        with pytest.raises(RuntimeError, match='boom'):
            hat_arch.upscale(tiny, np.zeros((8, 8, 3), np.float32))


@pytest.mark.parametrize('image, message', [
    (np.zeros((4, 4, 3), np.int32), 'dtype int32'),
    (np.zeros((4, 4, 5), np.uint8), r'\(4, 4, 5\)'),
    (np.zeros((4, 4, 3, 1), np.uint8), r'\(4, 4, 3, 1\)'),
    (np.zeros((0, 4, 3), np.uint8), 'no pixels'),
    ([[0.5]], 'list'),
])
def test_bad_images_fail_in_one_line(tiny, image, message):
    with pytest.raises(HatError, match=message):
        hat_arch.upscale(tiny, image)


def test_bad_settings_fail_in_one_line(tiny):
    with pytest.raises(HatError, match='tile must be'):
        hat_arch.upscale(tiny, np.zeros((4, 4, 3), np.uint8), tile=-3)
    with pytest.raises(HatError, match='alpha mode'):
        hat_arch.upscale(tiny, np.random.default_rng(0).random((4, 4, 4)), alpha='nearest')
