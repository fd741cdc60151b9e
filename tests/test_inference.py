"""Overlapping tiles: each output pixel is a cross-fade of the tiles that cover it, weights summing to one."""
from __future__ import annotations

import itertools

import torch

from hat_arch.inference import tiled_forward


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
