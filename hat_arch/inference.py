"""Running a super-resolution network on whole images: overlapping tiles and self-ensemble.

One implementation, used by :class:`~hat_arch.models.hat_model.HATModel` (validation and
test), by the ``hat-sr`` command and by the Python API.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

Network = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def eval_mode(net: nn.Module) -> Iterator[nn.Module]:
    """``net`` in eval mode while the block runs (no dropout or drop-path: HAT's default ``drop_path_rate`` of 0.1
    would make a network in training mode give a different output on every run), then in the mode it was in."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def _tile_starts(size: int, tile: int) -> list[int]:
    return list(range(0, max(size - tile, 0) + 1, tile)) + ([size - tile] if size > tile and size % tile else [])


def _ramp(length: int, fade_in: int, fade_out: int, device: torch.device) -> torch.Tensor:
    """1-D blending weights: rising over ``fade_in`` samples, flat, falling over ``fade_out`` samples; never zero."""
    weight = torch.ones(length, device=device)
    fade_in, fade_out = min(fade_in, length), min(fade_out, length)
    if fade_in:
        weight[:fade_in] = (torch.arange(fade_in, device=device) + 0.5) / fade_in
    if fade_out:
        weight[length - fade_out:] = torch.minimum(
            weight[length - fade_out:], (torch.arange(fade_out, 0, -1, device=device) - 0.5) / fade_out)
    return weight


@torch.no_grad()
def tiled_forward(net: Network, x: torch.Tensor, scale: int, tile_size: int, tile_pad: int = 32,
                  progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Run ``net`` on (b, c, h, w) in overlapping tiles and blend them into one (b, c, h*scale, w*scale) output.

    The image is cut into a grid of ``tile_size`` tiles (the last row/column shifted back to fit); each tile is run with
    ``tile_pad`` pixels of context on every side that has image there, and neighbouring outputs are cross-faded over
    their overlap, so no seam shows. Memory is bounded by one tile. Errors inside ``net`` are raised, never swallowed.
    ``progress`` is called with the number of tiles once before the first and with 1 after each tile.
    """
    if tile_size < 1:
        raise ValueError(f'tile_size must be positive, got {tile_size}')
    if tile_pad < 0:
        raise ValueError(f'tile_pad must be >= 0, got {tile_pad}')
    b, c, h, w = x.shape
    tile_h, tile_w = min(tile_size, h), min(tile_size, w)
    starts = [(y, x0) for y in _tile_starts(h, tile_h) for x0 in _tile_starts(w, tile_w)]
    if progress is not None:
        progress(-len(starts))
    output = weight_sum = None
    for y, x0 in starts:
        top, left = max(y - tile_pad, 0), max(x0 - tile_pad, 0)
        bottom, right = min(y + tile_h + tile_pad, h), min(x0 + tile_w + tile_pad, w)
        out = net(x[..., top:bottom, left:right])
        if output is None:
            out_c = out.shape[1]
            output = x.new_zeros(b, out_c, h * scale, w * scale, dtype=out.dtype)
            weight_sum = x.new_zeros(1, 1, h * scale, w * scale, dtype=out.dtype)
        # Cross-fade over the context margins, which overlap a neighbour (image borders have no margin).
        wy = _ramp((bottom - top) * scale, 2 * (y - top) * scale, 2 * (bottom - y - tile_h) * scale, x.device)
        wx = _ramp((right - left) * scale, 2 * (x0 - left) * scale, 2 * (right - x0 - tile_w) * scale, x.device)
        weight = (wy[:, None] * wx[None, :]).to(out.dtype)
        output[..., top * scale:bottom * scale, left * scale:right * scale] += out * weight
        weight_sum[..., top * scale:bottom * scale, left * scale:right * scale] += weight
        if progress is not None:
            progress(1)
    return output / weight_sum


_TRANSFORMS = [(flip_w, flip_h, transpose) for transpose in (False, True) for flip_h in (False, True)
               for flip_w in (False, True)]


def _transform(x: torch.Tensor, flip_w: bool, flip_h: bool, transpose: bool, inverse: bool = False) -> torch.Tensor:
    ops = [lambda t: t.flip(-1) if flip_w else t, lambda t: t.flip(-2) if flip_h else t,
           lambda t: t.transpose(-2, -1) if transpose else t]
    for op in (reversed(ops) if inverse else ops):
        x = op(x)
    return x


@torch.no_grad()
def self_ensemble(net: Network, x: torch.Tensor) -> torch.Tensor:
    """x8 geometric self-ensemble: average ``net`` over the 8 flips/transposes of the input, each undone."""
    total = None
    for flips in _TRANSFORMS:
        out = _transform(net(_transform(x, *flips)), *flips, inverse=True)
        total = out if total is None else total + out
    return total / len(_TRANSFORMS)


def run_network(net: Network, x: torch.Tensor, scale: int, tile_size: int | None = None, tile_pad: int = 32,
                ensemble: bool = False, progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """The one entry point: optional self-ensemble around optional tiling around ``net``."""
    if tile_size:
        run = lambda t: tiled_forward(net, t, scale, tile_size, tile_pad, progress)  # noqa: E731
    else:
        run = net
    with torch.no_grad():
        return self_ensemble(run, x) if ensemble else run(x)
