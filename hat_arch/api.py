"""``upscale``: super-resolve a numpy image (as ``cv2.imread`` gives it) with a HAT, in tiles that fit in memory.

Example::

    import cv2
    import hat_arch

    model = hat_arch.load_model('HAT-S_SRx4.pth')            # CUDA when available, else CPU
    image = cv2.imread('photo.png', cv2.IMREAD_UNCHANGED)    # gray, BGR or BGRA; 8 or 16 bit
    cv2.imwrite('photo_x4.png', hat_arch.upscale(model, image))
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import describe
from hat_arch.errors import HatError
from hat_arch.image_io import for_format, read_image, write_image
from hat_arch.image_tensor import from_model_channels, image_planes, planes_tensor, to_model_channels
from hat_arch.inference import TileSize, eval_mode, run_tiled
from hat_arch.image_memory import check_image_memory, upscale_bytes
from hat_arch.progress import Progress

ALPHA_MODES = ('model', 'bicubic')


def upscale(model: HAT, image: np.ndarray, tile: TileSize = 'auto', tile_pad: int = 32,
            ensemble: bool = False, alpha: str = 'model', progress: Progress | None = None,
            warn: Callable[[str], None] | None = None) -> np.ndarray:
    """Super-resolve ``image`` by the model's scale, keeping its layout, channels and dtype.

    Args:
        model: a HAT (:func:`hat_arch.load_model`); it runs in eval mode, and is left in the mode it was in. The
            image goes to its device and dtype.
        image: OpenCV layout: (h, w) or (h, w, 1) gray, (h, w, 3) BGR, (h, w, 4) BGRA, (h, w, 2) gray + alpha;
            uint8, uint16, or float in [0, 1]. RGB arrays (PIL, imageio): pass ``image[..., ::-1]`` and flip back.
        tile: tile side in input pixels, at least the network's window; 'auto' takes the largest that fits in free
            memory (the whole image when it fits); None or 0 runs the whole image at once. Out of memory is retried
            with tiles half as large.
        tile_pad: context pixels around each tile; tiles overlap by it and are blended, so no seams show.
        ensemble: average over the 8 flips and transposes (x8 time, slightly better).
        alpha: how an alpha channel is upscaled: 'model' (the network on the alpha plane: sharp edges, x2 time for
            images with transparency) or 'bicubic'. A constant alpha (opaque images saved with alpha) is only copied.
        progress: ``progress(done, total)``, called with the network calls (tiles) done for this image, over every
            pass (colour, alpha, the ensemble's eight): with 0 before the first and after each. An out-of-memory retry
            starts over with more, smaller tiles.
        warn: gets one line when fp16/bf16 tiles overflow and are redone in fp32 (default: a RuntimeWarning).

    Raises :class:`hat_arch.finite.NonFiniteOutput` (a HatError naming the checkpoint) when the network gives NaN or
    inf even in fp32 (non-finite weights): no black image is returned.

    Gray images run through a 3-channel model as gray RGB and come back as the mean of its output channels; colour
    images run through a 1-channel model one channel at a time. The result is (h*s, w*s[, c]), clipped to the range.
    """
    planes, alpha_plane, dtype = image_planes(image)
    info = describe(model)
    runs = _OverRuns(progress, 1 + (alpha_plane is not None and _alpha_by_network(alpha_plane, alpha)))

    def run(x: np.ndarray) -> np.ndarray:
        out = _run_planes(model, info.in_chans, x, tile, tile_pad, ensemble, runs, warn)
        runs.end_run()
        return out

    with eval_mode(model):
        out = run(planes)
        if out.shape[2] == 3:  # back to BGR, as OpenCV
            out = out[..., ::-1]
        if alpha_plane is not None:
            out = np.concatenate([out, _upscale_alpha(alpha_plane, info.scale, alpha, run)], axis=2)
    return _to_dtype(out, dtype, squeeze=image.ndim == 2)


def upscale_file(model: HAT, source: str | Path, target: str | Path, tile: TileSize = 'auto', tile_pad: int = 32,
                 ensemble: bool = False, alpha: str = 'model', max_pixels: int | None = None,
                 warn: Callable[[str], None] | None = None, progress: Progress | None = None) -> str:
    """Read the image at ``source``, :func:`upscale` it and write it to ``target`` in the format of its extension
    (:func:`hat_arch.image_io.for_format`): what ``hat-sr upscale`` and ``hat-sr serve`` do with each file.

    An image too large for the memory there is (or over ``max_pixels``) is refused from its header, before it is
    decoded; ``warn`` gets a line when only its first frame is used, and :func:`upscale`'s. Returns 'WxH -> WxH'
    (and the network calls, if more than one) for a log.
    """
    source, target = Path(source), Path(target)
    scale = describe(model).scale
    header = check_image_memory(source, lambda h: upscale_bytes(h, scale), f'upscale x{scale}', max_pixels)
    if header is not None and header.frames and warn is not None:
        warn(f'warning: {source} has several frames (animated or multi-page); only the first is upscaled')
    calls = [1]  # the network calls (tiles) for this image, as ``progress`` last reported them

    def count_calls(done: int, total: int) -> None:
        calls[0] = total
        if progress is not None:
            progress(done, total)

    image = read_image(source)
    output = upscale(model, image, tile=tile, tile_pad=tile_pad, ensemble=ensemble, alpha=alpha, progress=count_calls,
                     warn=warn)
    output = for_format(output, target)
    target.parent.mkdir(parents=True, exist_ok=True)  # here, so that a run that writes nothing creates nothing
    write_image(target, output)
    sizes = f'{image.shape[1]}x{image.shape[0]} -> {output.shape[1]}x{output.shape[0]}'
    return sizes + (f' ({calls[0]} network calls)' if calls[0] > 1 else '')


def _to_dtype(image: np.ndarray, dtype: np.dtype, squeeze: bool) -> np.ndarray:
    image = np.clip(image, 0.0, 1.0)
    if np.issubdtype(dtype, np.integer):
        image = np.rint(image * np.iinfo(dtype).max)
    image = image.astype(dtype)
    return image[..., 0] if squeeze else image


class _OverRuns:
    """The progress of an image's network runs (colour, alpha) as one: runs still to come count as this one."""

    def __init__(self, progress: Progress | None, runs: int):
        self.progress, self.runs_left, self.finished, self.current = progress, runs, 0, 0

    def __call__(self, done: int, total: int) -> None:
        self.current = total
        if self.progress is not None:
            self.progress(self.finished + done, self.finished + total * self.runs_left)

    def end_run(self) -> None:
        self.finished, self.runs_left = self.finished + self.current, self.runs_left - 1


def _alpha_by_network(alpha: np.ndarray, mode: str) -> bool:
    """Whether the alpha plane is upscaled by the network (else copied, if constant, or bicubic)."""
    if mode not in ALPHA_MODES:
        raise HatError(f'alpha mode {mode!r} is not one of {ALPHA_MODES}')
    return mode == 'model' and alpha.min() != alpha.max()


def _upscale_alpha(alpha: np.ndarray, scale: int, mode: str, run: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    if _alpha_by_network(alpha, mode):
        return run(alpha)
    h, w = alpha.shape[:2]
    if alpha.min() == alpha.max():
        return np.full((h * scale, w * scale, 1), alpha.flat[0], dtype=np.float32)
    return cv2.resize(alpha, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)[..., None]


def _run_planes(model: HAT, model_channels: int, planes: np.ndarray, tile: TileSize, tile_pad: int, ensemble: bool,
                progress: Progress | None, warn: Callable[[str], None] | None) -> np.ndarray:
    """The network on (h, w, c) float32 RGB or gray planes -> (h*s, w*s, c), matching channels to the model's
    (:mod:`hat_arch.image_tensor`)."""
    parameter = next(model.parameters())
    x = planes_tensor(planes).to(device=parameter.device, dtype=parameter.dtype)
    out = run_tiled(model, to_model_channels(x, model_channels), tile, tile_pad, ensemble, progress, warn)
    return from_model_channels(out, x.shape[1])[0].float().permute(1, 2, 0).cpu().numpy()
