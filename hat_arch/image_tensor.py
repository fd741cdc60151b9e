"""Images as a network takes them, one conversion for :func:`hat_arch.upscale` and ``hat-sr lam``.

An array as OpenCV reads it (gray, BGR, BGRA or gray + alpha; 8 or 16 bit, or float in [0, 1]) becomes float32 RGB
or gray planes in [0, 1] and an alpha plane (:func:`image_planes`); the planes are matched to the model's channels on
the way in and back (:func:`to_model_channels`, :func:`from_model_channels`): a gray image runs through a 3-channel
model as gray RGB and comes back as the mean of its output channels; a colour image runs through a 1-channel model one
channel at a time.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import describe
from hat_arch.errors import HatError


def image_planes(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.dtype]:
    """Float32 (h, w, 1 or 3) gray or RGB planes in [0, 1], the (h, w, 1) alpha plane or None, and the input dtype
    (to convert the result back). HatError for an array that is not an image."""
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
    alpha = None
    if planes.shape[2] in (2, 4):
        planes, alpha = planes[..., :-1], planes[..., -1:]
    if planes.shape[2] == 3:  # BGR, as OpenCV; the networks are trained on RGB
        planes = planes[..., ::-1]
    return planes, alpha, image.dtype


def planes_tensor(planes: np.ndarray) -> torch.Tensor:
    """(h, w, c) planes as a (1, c, h, w) tensor."""
    return torch.from_numpy(np.ascontiguousarray(planes.transpose(2, 0, 1)))[None]


def to_model_channels(x: torch.Tensor, model_channels: int) -> torch.Tensor:
    """(n, c, h, w) images as the input of a model taking ``model_channels``: gray expanded to gray RGB, or colour as
    a batch of n * 3 gray images."""
    n, channels, h, w = x.shape
    if channels == model_channels:
        return x
    if channels == 1 and model_channels == 3:
        return x.expand(-1, 3, -1, -1)
    if channels == 3 and model_channels == 1:
        return x.reshape(n * 3, 1, h, w)
    raise HatError(f'the model takes {model_channels}-channel images; this one has {channels} colour channels')


def from_model_channels(out: torch.Tensor, channels: int) -> torch.Tensor:
    """The model's output for :func:`to_model_channels`' input as images of ``channels``: the mean of gray RGB, or the
    colour planes gathered back."""
    if out.shape[1] == channels:
        return out
    if channels == 1:
        return out.mean(1, keepdim=True)
    return out.reshape(-1, channels, *out.shape[-2:])


class ImageChannels(nn.Module):
    """A HAT as a network on images of any channels, matched as :func:`hat_arch.upscale` matches them (for
    :func:`hat_arch.lam`, so that it explains the output ``hat-sr upscale`` gives)."""

    def __init__(self, model: HAT) -> None:
        super().__init__()
        self.model, self.model_channels = model, describe(model).in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return from_model_channels(self.model(to_model_channels(x, self.model_channels)), x.shape[1])
