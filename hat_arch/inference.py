"""Running a super-resolution network on whole images: overlapping tiles, the tiling policy (tile sizes checked, 'auto'
from free memory, out-of-memory retry, window rounding) and self-ensemble.

The one implementation: validation and test in BasicSR, the commands, the page and the Python API tile the same
way.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Literal, Union

import torch
from torch import nn

from hat_arch.archs.hat_arch import HAT, NUM_FEAT
from hat_arch.checkpoint import ModelInfo, describe
from hat_arch.errors import HatError
from hat_arch.finite import finite_network
from hat_arch.image_memory import available_memory
from hat_arch.progress import Progress

Network = Callable[[torch.Tensor], torch.Tensor]
# A tile side in input pixels, 'auto' (the largest that fits in free memory), or 0 / None (the whole image).
TileSize = Union[int, Literal['auto'], None]
# Share of the free memory a tile may take: room for the image, the output and the allocator's slack.
MEMORY_FRACTION = 0.5


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


def tile_grid(h: int, w: int, tile_size: int) -> list[tuple[int, int]]:
    """Top-left corners of the tiles that cover an h x w image (the last row/column shifted back to fit)."""
    tile_h, tile_w = min(tile_size, h), min(tile_size, w)
    return [(y, x) for y in _tile_starts(h, tile_h) for x in _tile_starts(w, tile_w)]


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
                  progress: Progress | None = None) -> torch.Tensor:
    """Run ``net`` on (b, c, h, w) in overlapping tiles and blend them into one (b, c, h*scale, w*scale) output.

    The image is cut into a grid of ``tile_size`` tiles (the last row/column shifted back to fit); each tile is run with
    ``tile_pad`` pixels of context on every side that has image there, and neighbouring outputs are cross-faded over
    their overlap, so no seam shows. Memory is bounded by one tile. Errors inside ``net`` are raised, never swallowed.
    ``progress(done, total)`` is called with the tiles done before the first tile and after each.
    """
    if tile_size < 1:
        raise ValueError(f'tile_size must be positive, got {tile_size}')
    if tile_pad < 0:
        raise ValueError(f'tile_pad must be >= 0, got {tile_pad}')
    b, c, h, w = x.shape
    tile_h, tile_w = min(tile_size, h), min(tile_size, w)
    starts = tile_grid(h, w, tile_size)
    if progress is not None:
        progress(0, len(starts))
    output = weight_sum = None
    for done, (y, x0) in enumerate(starts, 1):
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
            progress(done, len(starts))
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
                ensemble: bool = False, progress: Progress | None = None) -> torch.Tensor:
    """The one entry point: optional self-ensemble around optional tiling around ``net``.

    ``progress(done, total)`` counts the calls of ``net`` (tiles, or whole images) over all the ensemble's passes.
    """
    calls = (len(_TRANSFORMS) if ensemble else 1) * (len(tile_grid(*x.shape[-2:], tile_size)) if tile_size else 1)
    done = 0

    def count() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, calls)

    def after_tile(tiles_done: int, _tiles: int) -> None:
        if tiles_done:  # not the call before the first tile
            count()

    def run(t: torch.Tensor) -> torch.Tensor:
        if tile_size:
            return tiled_forward(net, t, scale, tile_size, tile_pad, after_tile)
        out = net(t)
        count()
        return out

    if progress is not None:
        progress(0, calls)
    with torch.no_grad():
        return self_ensemble(run, x) if ensemble else run(x)


def check_tile_size(tile_size: TileSize, window_size: int | None = None) -> None:
    """HatError unless ``tile_size`` is a number of pixels (at least ``window_size``, if given), 0 / None (the whole
    image) or 'auto'. A tile below the window would run the whole network for a few pixels (``--tile 1``: once per
    pixel, hours for a small image)."""
    whole_or_auto = tile_size is None or tile_size == 'auto'
    if not (whole_or_auto or (isinstance(tile_size, int) and not isinstance(tile_size, bool) and tile_size >= 0)):
        raise HatError(f"tile must be a positive number of pixels, 0 / None (whole image) or 'auto', got "
                       f'{tile_size!r}')
    if window_size and isinstance(tile_size, int) and 0 < tile_size < window_size:
        raise HatError(f"tile {tile_size} is smaller than the network's window of {window_size} pixels; use a tile of "
                       f"{window_size} or more (a multiple of it), 0 for the whole image, or 'auto'")


def run_tiled(model: HAT, x: torch.Tensor, tile_size: TileSize = 'auto', tile_pad: int = 32, ensemble: bool = False,
              progress: Progress | None = None, warn: Callable[[str], None] | None = None) -> torch.Tensor:
    """The tiling policy: :func:`run_network` in tiles of ``tile_size`` ('auto': the largest that fits in free memory,
    see :func:`auto_tile`; 0 / None: the whole image), retried with tiles half as large (window multiples) while
    memory runs out; every tile's output checked to be finite (:func:`hat_arch.finite.finite_network`: fp16/bf16
    tiles redone in fp32, ``warn`` told once; the output is fp32). Used by the API, ``hat-sr`` and
    :class:`~hat_arch.models.hat_model.HATModel`."""
    info = describe(model)
    check_tile_size(tile_size, info.window_size)
    tile_size = auto_tile(model, x, tile_pad, info) if tile_size == 'auto' else tile_size or None
    net = finite_network(model, warn)
    while True:
        try:
            return run_network(net, x, info.scale, tile_size, tile_pad, ensemble, progress)
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
            failed = tile_size or max(x.shape[-2:])
        # Retry outside the except block, so the traceback no longer holds the failed run's tensors.
        _release_cached_memory(x.device)
        tile_size = _round_tile(failed // 2, info.window_size)
        if tile_size >= failed:
            raise HatError(f'out of memory on {x.device} even with {failed}-pixel tiles; free memory, use '
                           '--precision bf16/fp16 or the CPU')


def auto_tile(model: HAT, x: torch.Tensor, tile_pad: int = 32, info: ModelInfo | None = None) -> int | None:
    """The largest tile side (a multiple of the window) whose run fits in free memory; None if the whole image fits.

    CUDA: measured on a small probe run against the free GPU memory. CPU: an estimate from the network's widths
    against the available RAM. ``info``: the model's :func:`~hat_arch.checkpoint.describe`, if the caller has it.
    """
    info = info or describe(model)
    batch, _, h, w = x.shape
    per_pixel = batch * _bytes_per_pixel(model, x, info)
    budget = MEMORY_FRACTION * _free_memory(x.device)
    pixels = budget / per_pixel
    if h * w <= pixels:
        return None
    return _round_tile(math.isqrt(int(pixels)) - 2 * tile_pad, info.window_size)


def _round_tile(size: int, window_size: int) -> int:
    return max(window_size, size // window_size * window_size)


def _bytes_per_pixel(model: HAT, x: torch.Tensor, info: ModelInfo | None = None) -> float:
    """Peak memory of a run per input pixel (for one image of the batch)."""
    info = info or describe(model)
    if x.device.type == 'cuda':
        side = 4 * info.window_size
        probe = x.new_zeros(1, x.shape[1], side, side)
        torch.cuda.synchronize(x.device)
        torch.cuda.reset_peak_memory_stats(x.device)
        before = torch.cuda.memory_allocated(x.device)
        with torch.no_grad():
            model(probe)
        return (torch.cuda.max_memory_allocated(x.device) - before) / side**2
    # Live tensors at the peak, measured on the CPU (HAT-S, x2 and x4): about 20 feature maps of the body (attention
    # gathers windows of q, k, v); the last upsampling conv's input and output (2 x 64 channels at the output
    # resolution); with explicit attention, its matrices and their softmax (2 x heads x overlapping-window pixels).
    values = forward_values_per_pixel(info.config.embed_dim, info.scale)
    if model.attn_impl == 'naive':
        heads = max(table.shape[1] for name, table in model.named_parameters()
                    if name.endswith('relative_position_bias_table'))
        values += 2 * heads * model.relative_position_index_OCA.shape[1]
    return values * x.element_size()


def forward_values_per_pixel(embed_dim: int, scale: int) -> int:
    """Values live at the peak of a fused-attention run without gradients, per input pixel (see
    :func:`_bytes_per_pixel`)."""
    return 20 * embed_dim + 2 * NUM_FEAT * scale**2


def _free_memory(device: torch.device) -> float:
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return available_memory()


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is a device or host allocation failure (CUDA, MPS, CPU), which a smaller tile may avoid."""
    message = str(error)
    return (isinstance(error, torch.OutOfMemoryError) or 'out of memory' in message
            or "can't allocate memory" in message)


def _release_cached_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()
