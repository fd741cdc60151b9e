"""``upscale``: super-resolve a numpy image (as ``cv2.imread`` gives it) with a HAT, in tiles that fit in memory.

Example::

    import cv2
    import hat_arch

    model = hat_arch.load_model('HAT-S_SRx4.pth')            # CUDA when available, else CPU
    image = cv2.imread('photo.png', cv2.IMREAD_UNCHANGED)    # gray, BGR or BGRA; 8 or 16 bit
    cv2.imwrite('photo_x4.png', hat_arch.upscale(model, image))
"""
from __future__ import annotations

import math
import os
from typing import Callable, Literal

import cv2
import numpy as np
import torch

from hat_arch.archs.hat_arch import HAT, NUM_FEAT
from hat_arch.errors import HatError
from hat_arch.inference import eval_mode, run_network

ALPHA_MODES = ('model', 'bicubic')
# Share of the free memory a tile may take: room for the image, the output and the allocator's slack.
MEMORY_FRACTION = 0.5


def upscale(model: HAT, image: np.ndarray, tile: int | Literal['auto'] | None = 'auto', tile_pad: int = 32,
            ensemble: bool = False, alpha: str = 'model',
            progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Super-resolve ``image`` by ``model.upscale``, keeping its layout, channels and dtype.

    Args:
        model: a HAT (:func:`hat_arch.load_model`); it runs in eval mode, and is left in the mode it was in. The
            image goes to its device and dtype.
        image: OpenCV layout: (h, w) or (h, w, 1) gray, (h, w, 3) BGR, (h, w, 4) BGRA, (h, w, 2) gray + alpha;
            uint8, uint16, or float in [0, 1]. RGB arrays (PIL, imageio): pass ``image[..., ::-1]`` and flip back.
        tile: tile side in input pixels; 'auto' takes the largest that fits in free memory (the whole image when it
            fits); None or 0 runs the whole image at once. Out of memory is retried with tiles half as large.
        tile_pad: context pixels around each tile; tiles overlap by it and are blended, so no seams show.
        ensemble: average over the 8 flips and transposes (x8 time, slightly better).
        alpha: how an alpha channel is upscaled: 'model' (the network on the alpha plane: sharp edges, x2 time for
            images with transparency) or 'bicubic'. A constant alpha (opaque images saved with alpha) is only copied.
        progress: called with -(number of tiles) before the first tile of each network run and with 1 after each.

    Gray images run through a 3-channel model as gray RGB and come back as the mean of its output channels; colour
    images run through a 1-channel model one channel at a time. The result is (h*s, w*s[, c]), clipped to the range.
    """
    planes, alpha_plane, dtype = _split(image)
    run = lambda x: _run_planes(model, x, tile, tile_pad, ensemble, progress)  # noqa: E731
    with eval_mode(model):
        if planes.shape[2] == 3:  # BGR, as cv2; the networks are trained on RGB
            out = run(planes[..., ::-1])[..., ::-1]
        else:
            out = run(planes)
        if alpha_plane is not None:
            out = np.concatenate([out, _upscale_alpha(alpha_plane, model.upscale, alpha, run)], axis=2)
    return _to_dtype(out, dtype, squeeze=image.ndim == 2)


def _split(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.dtype]:
    """Float32 (h, w, 1 or 3) colour planes in [0, 1], the (h, w, 1) alpha plane or None, and the input dtype."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] > 4):
        shape = getattr(image, 'shape', type(image).__name__)
        raise HatError(f'expected an (h, w) or (h, w, 1-4) image array, got {shape}')
    if image.dtype == np.uint8 or image.dtype == np.uint16:
        scale = np.iinfo(image.dtype).max
    elif np.issubdtype(image.dtype, np.floating):
        scale = 1.0
    else:
        raise HatError(f'image dtype {image.dtype} is not supported (uint8, uint16 or float in [0, 1])')
    if min(image.shape[:2]) == 0:
        raise HatError(f'image has no pixels: shape {image.shape}')
    if image.ndim == 2:
        image = image[..., None]
    planes = image.astype(np.float32) / scale
    if planes.shape[2] in (2, 4):
        return planes[..., :-1], planes[..., -1:], image.dtype
    return planes, None, image.dtype


def _to_dtype(image: np.ndarray, dtype: np.dtype, squeeze: bool) -> np.ndarray:
    image = np.clip(image, 0.0, 1.0)
    if np.issubdtype(dtype, np.integer):
        image = np.rint(image * np.iinfo(dtype).max)
    image = image.astype(dtype)
    return image[..., 0] if squeeze else image


def _upscale_alpha(alpha: np.ndarray, scale: int, mode: str, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    if mode not in ALPHA_MODES:
        raise HatError(f'alpha mode {mode!r} is not one of {ALPHA_MODES}')
    h, w = alpha.shape[:2]
    if alpha.min() == alpha.max():
        return np.full((h * scale, w * scale, 1), alpha.flat[0], dtype=np.float32)
    if mode == 'bicubic':
        return cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)[..., None]
    return run(alpha)


def _run_planes(model: HAT, planes: np.ndarray, tile: int | str | None, tile_pad: int, ensemble: bool,
                progress: Callable[[int], None] | None) -> np.ndarray:
    """The network on (h, w, c) float32 RGB or gray planes -> (h*s, w*s, c), matching channels to the model's."""
    parameter = next(model.parameters())
    x = torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))[None]
    x = x.to(device=parameter.device, dtype=parameter.dtype)
    channels, model_channels = x.shape[1], model.in_chans
    if channels == 1 and model_channels == 3:
        out = _run_tiles(model, x.expand(-1, 3, -1, -1), tile, tile_pad, ensemble, progress).mean(1, keepdim=True)
    elif channels == 3 and model_channels == 1:
        out = _run_tiles(model, x.transpose(0, 1), tile, tile_pad, ensemble, progress).transpose(0, 1)
    elif channels == model_channels:
        out = _run_tiles(model, x, tile, tile_pad, ensemble, progress)
    else:
        raise HatError(f'the model takes {model_channels}-channel images; this one has {channels} colour channels')
    return out[0].float().permute(1, 2, 0).cpu().numpy()


def _run_tiles(model: HAT, x: torch.Tensor, tile: int | str | None, tile_pad: int, ensemble: bool,
               progress: Callable[[int], None] | None) -> torch.Tensor:
    """``run_network`` in tiles of ``tile`` ('auto': the largest that fits), halving them while memory runs out."""
    if tile == 'auto':
        tile_size = auto_tile(model, x, tile_pad)
    elif tile is None or (isinstance(tile, int) and tile >= 0):
        tile_size = tile or None
    else:
        raise HatError(f"tile must be a positive number of pixels, 0 / None (whole image) or 'auto', got {tile!r}")
    while True:
        try:
            return run_network(model, x, model.upscale, tile_size, tile_pad, ensemble, progress)
        except RuntimeError as error:
            if not _is_out_of_memory(error):
                raise
            failed = tile_size or max(x.shape[-2:])
        # Retry outside the except block, so the traceback no longer holds the failed run's tensors.
        _release_cached_memory(x.device)
        tile_size = _round_tile(failed // 2, model.window_size)
        if tile_size >= failed:
            raise HatError(f'out of memory on {x.device} even with {failed}-pixel tiles; free memory, use '
                           '--precision bf16/fp16 or the CPU')


def auto_tile(model: HAT, x: torch.Tensor, tile_pad: int = 32) -> int | None:
    """The largest tile side (a multiple of the window) whose run fits in free memory; None if the whole image fits.

    CUDA: measured on a small probe run against the free GPU memory. CPU: an estimate from the network's widths
    against the available RAM.
    """
    batch, _, h, w = x.shape
    per_pixel = batch * _bytes_per_pixel(model, x)
    budget = MEMORY_FRACTION * _free_memory(x.device)
    pixels = budget / per_pixel
    if h * w <= pixels:
        return None
    return _round_tile(math.isqrt(int(pixels)) - 2 * tile_pad, model.window_size)


def _round_tile(size: int, window_size: int) -> int:
    return max(window_size, size // window_size * window_size)


def _bytes_per_pixel(model: HAT, x: torch.Tensor) -> float:
    """Peak memory of a run per input pixel (for one image of the batch)."""
    if x.device.type == 'cuda':
        side = 4 * model.window_size
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
    values = 20 * model.conv_first.out_channels + 2 * NUM_FEAT * model.upscale**2
    if model.attn_impl == 'naive':
        heads = max(table.shape[1] for name, table in model.named_parameters()
                    if name.endswith('relative_position_bias_table'))
        values += 2 * heads * model.relative_position_index_OCA.shape[1]
    return values * x.element_size()


def _free_memory(device: torch.device) -> float:
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open('/proc/meminfo') as meminfo:
            fields = dict(line.split(':', 1) for line in meminfo)
        return int(fields['MemAvailable'].split()[0]) * 1024
    except (OSError, KeyError, ValueError):  # not Linux: the physical memory, or 8 GiB if unknown
        try:
            return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2
        except (AttributeError, ValueError, OSError):
            return 8 * 2**30


def _is_out_of_memory(error: RuntimeError) -> bool:
    message = str(error)
    return (isinstance(error, torch.OutOfMemoryError) or 'out of memory' in message
            or "can't allocate memory" in message)


def _release_cached_memory(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.empty_cache()
