"""Local attribution maps (LAM) and the diffusion index (DI) of a super-resolution network.

Gu & Dong, "Interpreting Super-Resolution Networks with Local Attribution Maps", CVPR 2021. For a small box of the
network's output, LAM asks which input pixels the network used to produce it:

* target: the box's texture, the sum over the box (all channels) of the output's gradient magnitude
  ``sqrt(dx^2 + dy^2)`` with forward differences;
* path: from a Gaussian-blurred baseline (``sigma``) to the image, through blurs of linearly falling sigma, so every
  point of the path is the image with less detail removed;
* attribution: path-integrated gradients, ``sum_i grad(target)(p_i) * (p_i - p_(i-1))`` over the ``steps`` segments
  (right Riemann sum, as the authors' code);
* LAM map: ``|attribution summed over channels|`` normalised to a maximum of 1;
* DI: ``(1 - Gini(LAM map)) * 100``, in [0, 100]: near 0 when one pixel holds all the attribution, 100 when all
  pixels hold the same.

Defaults are those of the authors' demo: ``sigma=1.2``, ``steps=50`` (their ``fold``), ``kernel_size=9`` (their
``l``), figure blend ``alpha=0.5``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hat_arch.archs.hat_arch import HAT, NUM_FEAT
from hat_arch.checkpoint import ModelInfo, describe
from hat_arch.errors import HatError, first_line
from hat_arch.finite import NonFiniteOutput, non_finite_message
from hat_arch.image_io import ImageHeader, read_image
from hat_arch.image_tensor import ImageChannels, image_planes, planes_tensor
from hat_arch.inference import is_out_of_memory, eval_mode
from hat_arch.image_memory import FLOAT32, check_image_memory, upscale_bytes
from hat_arch.progress import Progress

SIGMA = 1.2
STEPS = 50
KERNEL_SIZE = 9
# The authors' kernel is exp(-r^2 / (2 (sigma + eps)^2)); eps keeps sigma = 0 finite (a delta kernel).
KERNEL_EPS = 1e-5
MAX_PANEL_SIDE = 512
# Floats per token that one block keeps for the backward pass, per channel (its norms, projections, conv branch,
# gathered windows, sums) and per MLP channel; and per group (its conv and embedding). Measured against the peak of
# LAM runs (tests/test_attribution_memory.py) with room for the backward's transient gradients.
BLOCK_FLOATS_PER_CHANNEL = 40
BLOCK_FLOATS_PER_MLP_CHANNEL = 4
GROUP_FLOATS_PER_CHANNEL = 12
# Attention backward's chunk buffers, autograd's bookkeeping, allocator slack, and the library code the first backward
# pass loads: measured at 220-375 MiB beyond the arrays on a tiny HAT at 64x64 (tests/test_attribution_memory.py).
FIXED_BYTES = 384 * 2**20

Box = tuple[int, int, int, int]


@dataclass
class LAMResult:
    """What :func:`lam` returns; tensors are on the CPU.

    image: (c, h, w) the input; output: (c, H, W) the network's output for it; attribution: (c, h, w) the
    path-integrated gradients; lam_map: (h, w) the LAM map in [0, 1]; diffusion_index: DI in [0, 100] (nan when the
    attribution is zero everywhere); box: (x, y, w, h) in output pixels; the path settings.
    """

    image: torch.Tensor
    output: torch.Tensor
    attribution: torch.Tensor
    lam_map: torch.Tensor
    diffusion_index: float
    box: Box
    sigma: float
    steps: int
    kernel_size: int

    def figure(self, alpha: float = 0.5) -> np.ndarray:
        """The LAM figure as a BGR uint8 image, four panels at output size (longest side at most 512):
        input with the box | LAM map over the input | area used (density of the LAM map) over the input | output.
        ``alpha`` is the input's weight in the blends."""
        return lam_figure(self, alpha)


def lam(model: nn.Module, image: torch.Tensor, box: Box, *, sigma: float = SIGMA, steps: int = STEPS,
        kernel_size: int = KERNEL_SIZE, batch_size: int = 1, progress: Progress | None = None) -> LAMResult:
    """Local attribution map of ``model`` for the output box ``box = (x, y, w, h)`` (output pixels, x = column).

    ``image``: (c, h, w) or (1, c, h, w), in the range the model takes (``[0, 1]`` for HAT); it is moved to the model's
    device and dtype. ``batch_size`` path points run per forward pass; ``progress(done, total)`` is called with the
    path steps done, before the first pass and after each (:func:`hat_arch.progress.progress_bar` shows them). The
    model runs in eval mode (its mode is restored afterwards); its parameters get no gradients.
    """
    if image.dim() == 3:
        image = image[None]
    if image.dim() != 4 or image.shape[0] != 1:
        raise HatError(f'image must be (c, h, w) or (1, c, h, w), got shape {tuple(image.shape)}')
    _check_settings(box, sigma, steps, kernel_size, batch_size)
    param = next(model.parameters(), None)
    if param is not None:
        image = image.to(device=param.device, dtype=param.dtype)
    image = image.detach()

    with eval_mode(model):
        with torch.no_grad():
            output = model(image)
        if not torch.isfinite(output).all():  # its gradients, map and DI would be NaN ('DI undefined')
            raise NonFiniteOutput(non_finite_message(model))
        _check_box(box, output.shape[-2:])
        attribution = torch.zeros_like(image)
        path = blur_path(image, sigma, steps, kernel_size)
        previous = next(path)
        report = progress or (lambda done, total: None)
        report(0, steps)
        for start in range(0, steps, batch_size):
            points = [next(path) for _ in range(min(batch_size, steps - start))]
            batch = torch.cat(points)
            deltas = batch - torch.cat([previous, *points[:-1]])
            previous = points[-1]
            attribution += (_target_gradient(model, batch, box) * deltas).sum(0, keepdim=True)
            report(start + len(points), steps)

    if not torch.isfinite(attribution).all():
        raise NonFiniteOutput(non_finite_message(model, 'gradients'))
    attribution = attribution[0].float().cpu()
    lam_map = attribution.sum(0).abs()
    if lam_map.max() > 0:
        lam_map = lam_map / lam_map.max()
    return LAMResult(image=image[0].float().cpu(), output=output[0].float().cpu(), attribution=attribution,
                     lam_map=lam_map, diffusion_index=diffusion_index(lam_map), box=tuple(box), sigma=sigma,
                     steps=steps, kernel_size=kernel_size)


def lam_file(model: HAT, source: str | Path, box: Box, *, max_pixels: int | None = None, sigma: float = SIGMA,
             steps: int = STEPS, kernel_size: int = KERNEL_SIZE, batch_size: int = 1,
             progress: Progress | None = None) -> LAMResult:
    """:func:`lam` of a HAT for the image file ``source``, read as ``hat-sr upscale`` reads it (gray, 16-bit or float
    images run as the model's channels, :class:`~hat_arch.image_tensor.ImageChannels`; an alpha plane is not
    explained), once :func:`check_lam_image` has passed it."""
    check_lam_image(source, describe(model), max_pixels, batch_size)
    planes, _alpha, _dtype = image_planes(read_image(source))
    try:
        return lam(ImageChannels(model), planes_tensor(planes), box, sigma=sigma, steps=steps,
                   kernel_size=kernel_size, batch_size=batch_size, progress=progress)
    except RuntimeError as error:  # torch.OutOfMemoryError, or the CPU allocator's "can't allocate memory"
        if not is_out_of_memory(error):
            raise
        raise HatError(f'{source}: LAM ran out of memory ({first_line(error)[:100]}); use a smaller image or a crop '
                       'around the box, and --batch-size 1') from None


def lam_bytes(header: ImageHeader, info: ModelInfo, batch_size: int = 1) -> int:
    """An upper bound of the memory :func:`lam_file` takes for an image of ``header``'s size with the HAT of
    ``info``: the decoded image and its output, the path points, and the activations that the backward pass of
    ``batch_size`` path points keeps, over the whole image (the gradient of a box reaches every pixel, so LAM does not
    tile). The input is padded to the window, as the network does."""
    config = info.config
    window, scale, channels = info.window_size, info.scale, info.in_chans
    padded = -(-header.width // window) * window * -(-header.height // window) * window
    dim, blocks, groups = config.embed_dim, sum(config.depths) + len(config.depths), len(config.depths)
    per_block = BLOCK_FLOATS_PER_CHANNEL * dim + BLOCK_FLOATS_PER_MLP_CHANNEL * int(dim * config.mlp_ratio)
    features = blocks * per_block + groups * GROUP_FLOATS_PER_CHANNEL * dim + 8 * dim
    reconstruction = 4 * (NUM_FEAT + scale**2 * (NUM_FEAT + channels)) if config.upsampler else 4 * channels
    network = padded * (features + 2 * reconstruction) * FLOAT32 * batch_size
    # the image, output and attribution in float32, and (kernel blur) a handful of path points and their deltas
    lam_arrays = header.pixels * channels * FLOAT32 * (8 + 2 * batch_size + scale**2)
    return upscale_bytes(header, scale) + network + lam_arrays + FIXED_BYTES


def check_lam_image(source: str | Path, model: ModelInfo, max_pixels: int | None = None,
                    batch_size: int = 1) -> ImageHeader | None:
    """:func:`~hat_arch.image_memory.check_image_memory` for LAM, from the image's header before it is decoded:
    HatError if the image is too large for LAM with ``model``."""
    return check_image_memory(source, lambda header: lam_bytes(header, model, batch_size),
                              f'attribute x{model.scale}', max_pixels)


def _check_settings(box: Box, sigma: float, steps: int, kernel_size: int, batch_size: int) -> None:
    if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] < 1 or box[3] < 1:
        raise HatError(f'box must be x,y,w,h with x, y >= 0 and w, h >= 1, got {box}')
    if not sigma >= 0:
        raise HatError(f'sigma must be >= 0, got {sigma}')
    if steps < 1:
        raise HatError(f'steps must be >= 1, got {steps}')
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise HatError(f'kernel size must be a positive odd number, got {kernel_size}')
    if batch_size < 1:
        raise HatError(f'batch size must be >= 1, got {batch_size}')


def _target_gradient(model: nn.Module, batch: torch.Tensor, box: Box) -> torch.Tensor:
    """Gradient of each path point's target w.r.t. that point: (n, c, h, w)."""
    batch = batch.clone().requires_grad_(True)
    with torch.enable_grad():
        (grads, ) = torch.autograd.grad(box_gradient_magnitude(model(batch), box), batch)
    return grads


def _check_box(box: Box, output_size: torch.Size) -> None:
    x, y, w, h = box
    height, width = output_size
    if x + w > width or y + h > height:
        raise HatError(f'box x={x},y={y},w={w},h={h} reaches outside the {width}x{height} output (width x height)')


def box_gradient_magnitude(output: torch.Tensor, box: Box) -> torch.Tensor:
    """LAM's target: the sum over the box, all channels and the batch, of ``sqrt(dx^2 + dy^2)`` (forward differences).

    output: (n, c, H, W). A box touching the last row or column loses that row or column, as in the authors' code.
    The norm's gradient at a zero difference is taken as 0 (the authors zero the NaNs it gives them).
    """
    x, y, w, h = box
    patch = output[..., y:y + h + 1, x:x + w + 1]
    dy = patch[..., 1:, :-1] - patch[..., :-1, :-1]
    dx = patch[..., :-1, 1:] - patch[..., :-1, :-1]
    return torch.linalg.vector_norm(torch.stack([dx, dy]), dim=0).sum()


def blur_path(image: torch.Tensor, sigma: float = SIGMA, steps: int = STEPS,
              kernel_size: int = KERNEL_SIZE) -> Iterator[torch.Tensor]:
    """The ``steps + 1`` points of LAM's path, lazily: ``image`` blurred with sigma falling linearly from ``sigma``
    (the baseline) to 0 (the image itself, exactly). image: (n, c, h, w)."""
    for point_sigma in torch.linspace(sigma, 0, steps + 1, dtype=torch.float64).tolist():
        yield gaussian_blur(image, point_sigma, kernel_size)


def gaussian_blur(image: torch.Tensor, sigma: float, kernel_size: int = KERNEL_SIZE) -> torch.Tensor:
    """Per-channel blur of (n, c, h, w) with the authors' normalised ``kernel_size`` Gaussian, borders reflected as
    OpenCV's ``filter2D`` does (replicated on images too small to reflect). ``sigma = 0`` returns the image."""
    if sigma == 0:
        return image
    radius = kernel_size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel_1d = torch.exp(-offsets**2 / (2 * (sigma + KERNEL_EPS)**2))
    kernel = torch.outer(kernel_1d, kernel_1d)
    kernel = (kernel / kernel.sum()).to(image)
    channels = image.shape[1]
    mode = 'reflect' if min(image.shape[-2:]) > radius else 'replicate'
    padded = F.pad(image, (radius, ) * 4, mode=mode)
    return F.conv2d(padded, kernel.expand(channels, 1, -1, -1), groups=channels)


def gini(values: torch.Tensor) -> float:
    """Gini coefficient of non-negative values: 0 when all are equal, (n - 1) / n when one holds everything; nan when
    all are zero."""
    values = values.detach().flatten().double().cpu()
    if (values < 0).any():
        raise ValueError('gini: values must be non-negative')
    total = values.sum()
    if total == 0:
        return math.nan
    n = values.numel()
    rank = torch.arange(1, n + 1, dtype=torch.float64)
    return float(((2 * rank - n - 1) * values.sort().values).sum() / (n * total))


def diffusion_index(lam_map: torch.Tensor) -> float:
    """DI = (1 - Gini(LAM map)) * 100: the share of input pixels the network used, in [0, 100]."""
    return (1 - gini(lam_map)) * 100


# -- the figure --------------------------------------------------------------------------------------------------


def lam_figure(result: LAMResult, alpha: float = 0.5) -> np.ndarray:
    """See :meth:`LAMResult.figure`."""
    out_h, out_w = result.output.shape[-2:]
    zoom = min(1.0, MAX_PANEL_SIDE / max(out_h, out_w))
    size = (max(1, round(out_w * zoom)), max(1, round(out_h * zoom)))
    lam_map = result.lam_map.numpy().astype(np.float32)

    image = cv2.resize(_to_bgr(result.image), size, interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(_colorize(lam_map), size, interpolation=cv2.INTER_NEAREST)
    area = cv2.resize(_colorize(_density(lam_map)), size, interpolation=cv2.INTER_LINEAR)
    output = cv2.resize(_to_bgr(result.output), size, interpolation=cv2.INTER_AREA)
    blend = lambda overlay: cv2.addWeighted(overlay, 1 - alpha, image, alpha, 0)  # noqa: E731

    x, y, w, h = (round(v * zoom) for v in result.box)
    panels = []
    for title, panel in (('input', image), (f'LAM  DI {result.diffusion_index:.2f}', blend(heat)),
                         ('area used', blend(area)), ('output', output)):
        panel = panel.copy()
        cv2.rectangle(panel, (x, y), (x + max(w, 1) - 1, y + max(h, 1) - 1), (0, 0, 255), 1)
        panels.append(_titled(panel, title))
    gap = np.full((panels[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)


def _to_bgr(image: torch.Tensor) -> np.ndarray:
    """(c, h, w) in [0, 1], c = 1 or 3 (RGB) -> (h, w, 3) BGR uint8."""
    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR if array.shape[-1] == 1 else cv2.COLOR_RGB2BGR)


def _colorize(values: np.ndarray) -> np.ndarray:
    """[0, 1] -> BGR uint8 along the positive half of matplotlib's 'seismic' (white, red, dark red), as LAM draws."""
    stops = [0.0, 0.5, 1.0]
    red = np.interp(values, stops, [1.0, 1.0, 0.5])
    green_blue = np.interp(values, stops, [1.0, 0.0, 0.0])
    return (np.stack([green_blue, green_blue, red], axis=-1) * 255).round().astype(np.uint8)


def _density(lam_map: np.ndarray) -> np.ndarray:
    """Where the attribution lies: a kernel density of the pixel positions weighted by the LAM map, normalised to a
    maximum of 1. LAM uses scipy's weighted ``gaussian_kde``; here the same Scott's-rule bandwidth per axis is applied
    as one Gaussian blur (axis-aligned, no cross-covariance), which takes milliseconds instead of minutes."""
    total = float(lam_map.sum())
    if total == 0:
        return np.zeros_like(lam_map)
    weights = lam_map / total
    factor = (1 / float((weights**2).sum()))**(-1 / 6)  # Scott's rule in 2-D: n_eff^(-1/(d+4))
    ys, xs = np.indices(lam_map.shape)

    def bandwidth(coords: np.ndarray) -> float:
        mean = float((weights * coords).sum())
        return max(factor * math.sqrt(float((weights * (coords - mean)**2).sum())), 0.5)

    density = cv2.GaussianBlur(lam_map, (0, 0), sigmaX=bandwidth(xs), sigmaY=bandwidth(ys),
                               borderType=cv2.BORDER_CONSTANT)
    return density / density.max()


def _titled(panel: np.ndarray, title: str) -> np.ndarray:
    """The panel under a white strip holding ``title``."""
    strip = np.full((22, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)
