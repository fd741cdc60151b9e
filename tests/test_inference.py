"""Overlapping tiles: each output pixel is a cross-fade of the tiles that cover it, weights summing to one; the tiling
policy: sizes checked, 'auto' from free memory, window rounding."""
from __future__ import annotations

import itertools
from pathlib import Path
from unittest import mock

import pytest
import torch

from hat_arch import HAT, HatError, inference
from hat_arch.inference import run_network, run_tiled, tiled_forward
from tests.conftest import TINY_HAT


@pytest.fixture(scope='module')
def tiny():
    return HAT(**TINY_HAT).eval()


def numbered_tiles(scale: int):
    """A 'network' that upscales by nearest neighbour and answers tile number k with the constant k everywhere, so the
    output shows each pixel's weights directly."""
    counter = itertools.count()

    def net(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, x.shape[2] * scale, x.shape[3] * scale), float(next(counter)))

    return net


def test_neighbouring_tiles_cross_fade_linearly_over_their_overlap():
    # Width 16 in tiles of 8 with 2 pixels of context: tile 0 covers columns 0-9, tile 1 columns 6-15. Over the
    # 4 shared columns tile 1's weight rises 1/8, 3/8, 5/8, 7/8 and tile 0's falls; elsewhere one tile alone.
    out = tiled_forward(numbered_tiles(scale=1), torch.zeros(1, 1, 8, 16), scale=1, tile_size=8, tile_pad=2)
    expected_row = torch.tensor([0.0] * 6 + [0.125, 0.375, 0.625, 0.875] + [1.0] * 6)
    torch.testing.assert_close(out[0, 0], expected_row.expand(8, 16), rtol=0, atol=1e-6)


def test_the_cross_fade_is_in_output_pixels_and_in_both_directions():
    # 2 x 2 tiles at scale 2: tiles 0 1 / 2 3. Rows and columns fade independently over 2 * pad * scale = 4 pixels.
    out = tiled_forward(numbered_tiles(scale=2), torch.zeros(1, 1, 8, 8), scale=2, tile_size=4, tile_pad=1)
    ramp = torch.tensor([0.0] * 6 + [0.125, 0.375, 0.625, 0.875] + [1.0] * 6)
    expected = 2 * ramp[:, None] + ramp[None, :]  # tile number = 2 * row + column
    torch.testing.assert_close(out[0, 0], expected, rtol=0, atol=1e-6)


def nearest_upscale(scale: int):
    """A 'network' that upscales by nearest neighbour: its output at each pixel depends on where the tile sits."""
    return lambda x: x.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)


@pytest.mark.parametrize('h, w, scale, tile_size, tile_pad', [(8, 16, 1, 8, 2), (13, 10, 2, 4, 1), (9, 17, 3, 5, 3),
                                                               (6, 7, 2, 16, 4)])
def test_every_tile_lands_where_it_came_from(h, w, scale, tile_size, tile_pad):
    # Each input pixel holds its own position: an output pixel taken from the wrong place, or a tile placed one pixel
    # off, shows as a wrong value (the tiles agree wherever they overlap, so the blend is exact).
    x = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w)
    out = tiled_forward(nearest_upscale(scale), x, scale=scale, tile_size=tile_size, tile_pad=tile_pad)
    torch.testing.assert_close(out, nearest_upscale(scale)(x), rtol=0, atol=1e-9)


def test_auto_tile_uses_the_whole_image_when_it_fits_and_a_window_multiple_otherwise(tiny):
    x = torch.zeros(1, 3, 300, 400)
    per_pixel = inference._bytes_per_pixel(tiny, x)
    with mock.patch.object(inference, '_free_memory', return_value=300 * 400 * per_pixel / inference.MEMORY_FRACTION):
        assert inference.auto_tile(tiny, x, tile_pad=16) is None
    with mock.patch.object(inference, '_free_memory', return_value=200**2 * per_pixel / inference.MEMORY_FRACTION):
        assert inference.auto_tile(tiny, x, tile_pad=16) == 168  # (200 - 2 * 16) rounded down to a multiple of 8
    with mock.patch.object(inference, '_free_memory', return_value=1.0):
        assert inference.auto_tile(tiny, x) == tiny.window_size


def test_the_cpu_memory_estimate_is_the_documented_one():
    # HAT-S x4 (144 channels) in fp32: 20 feature maps of the body and two 64-channel maps at x4, 19.25 KiB per input
    # pixel (docs/upscale.md's "about 20 KiB"); the naive path adds its attention matrices (2 x 6 heads x 24 x 24).
    with torch.device('meta'):
        model = HAT(upscale=4, embed_dim=144, depths=[6] * 6, num_heads=[6] * 6, window_size=16, compress_ratio=24,
                    squeeze_factor=24, mlp_ratio=2, upsampler='pixelshuffle')
        naive = HAT(upscale=4, embed_dim=144, depths=[6] * 6, num_heads=[6] * 6, window_size=16, compress_ratio=24,
                    squeeze_factor=24, mlp_ratio=2, upsampler='pixelshuffle', attn_impl='naive')
    x = torch.zeros(1, 3, 8, 8)
    assert inference._bytes_per_pixel(model, x) == (20 * 144 + 2 * 64 * 16) * 4 == 19.25 * 1024
    assert inference._bytes_per_pixel(model, x.bfloat16()) == 19.25 * 512
    assert inference._bytes_per_pixel(naive, x) == (20 * 144 + 2 * 64 * 16 + 2 * 6 * 24 * 24) * 4


@pytest.mark.slow  # measures in a fresh process
@pytest.mark.skipif(not Path('/proc/self/clear_refs').exists(), reason='measures peak memory as Linux shows it')
def test_the_cpu_memory_estimate_bounds_a_measured_run_and_not_loosely(bench):
    # auto_tile divides free memory by the estimate: one below the real peak would run out of memory, one far above
    # it would cut needlessly small tiles. HAT-S x4 on a 32 x 32 input, the benchmark's peak resident size of a run.
    with torch.device('meta'):
        model = HAT.from_config(bench.CONFIGS['HAT-S_SRx4'])
    estimate = inference._bytes_per_pixel(model, torch.zeros(1, 3, 8, 8))
    measured = bench.peak_memory('HAT-S_SRx4', 32, 1, 'sdpa', train=False, threads=1) / 32**2
    assert measured <= estimate <= 2 * measured, (measured, estimate)  # measured: 14548 bytes, estimate 19712


@pytest.mark.parametrize('tile_size', [-3, 'big', 2.5, True])
def test_tile_sizes_are_checked_in_one_place(tiny, tile_size):
    with pytest.raises(HatError, match="tile must be a positive number of pixels, 0 / None .* or 'auto'"):
        run_tiled(tiny, torch.zeros(1, 3, 8, 8), tile_size)


def test_progress_counts_every_network_call_over_tiles_and_the_ensembles_passes():
    reports = []
    run_network(numbered_tiles(scale=1), torch.zeros(1, 1, 8, 12), 1, tile_size=4, tile_pad=1, ensemble=True,
                progress=lambda done, total: reports.append((done, total)))
    assert reports == [(done, 48) for done in range(49)]  # 2 x 3 tiles, 8 passes

    reports.clear()
    run_network(numbered_tiles(scale=1), torch.zeros(1, 1, 8, 12), 1, progress=lambda *r: reports.append(r))
    assert reports == [(0, 1), (1, 1)]  # the whole image, one call
