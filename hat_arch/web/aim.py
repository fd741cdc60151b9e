"""The LAM tab's aiming view: the input scaled up by a whole factor to about :data:`AIM_SIZE` pixels (pixelated, so
that each input pixel is a square to click), with the output box drawn where it will be explained; and where a click
on it puts that box."""
from __future__ import annotations

import math

import cv2
import numpy as np

AIM_SIZE = 512  # the view's longer side, about; larger inputs are shown as they are (the browser fits them)
BOX_COLOUR = (255, 32, 32)  # RGB, as the LAM figure's box


def aim_factor(width: int, height: int) -> int:
    """The whole factor that brings the longer side of a ``width`` x ``height`` input closest to, not over,
    :data:`AIM_SIZE` (1 for inputs of that size or more)."""
    return max(1, AIM_SIZE // max(width, height, 1))


def box_at(column: int, row: int, side: int, scale: int, width: int, height: int) -> tuple[int, int]:
    """The top-left corner (output pixels) of the ``side`` x ``side`` output box centred on the output of input pixel
    (``column``, ``row``), kept inside the ``scale`` x larger output of a ``width`` x ``height`` input."""

    def corner(at: int, extent: int) -> int:
        return min(max(at * scale + scale // 2 - side // 2, 0), max(extent * scale - side, 0))

    return corner(column, width), corner(row, height)


def clicked_pixel(index: tuple[int, int], factor: int) -> tuple[int, int]:
    """The input pixel (column, row) under a click at pixel ``index`` of the view scaled by ``factor``."""
    return index[0] // factor, index[1] // factor


def aim_view(image: np.ndarray, scale: int, box: tuple[int, int, int] | None) -> np.ndarray:
    """``image`` (8-bit RGB, the input) scaled by :func:`aim_factor` without smoothing, with the output ``box`` (x, y,
    side in output pixels of a ``scale`` x model) outlined where it lies on the input."""
    height, width = image.shape[:2]
    factor = aim_factor(width, height)
    view = cv2.resize(image, (width * factor, height * factor), interpolation=cv2.INTER_NEAREST)
    if box is not None:
        x, y, side = box
        at = factor / scale  # view pixels per output pixel
        thickness = max(2, math.ceil(max(view.shape[:2]) / AIM_SIZE))
        cv2.rectangle(view, (round(x * at), round(y * at)), (round((x + side) * at) - 1, round((y + side) * at) - 1),
                      BOX_COLOUR, thickness)
    return view


def rgb8(image: np.ndarray) -> np.ndarray:
    """An image as :func:`hat_arch.image_io.read_image` gives it (BGR or gray, with or without alpha, 8 or 16 bits,
    or float) as 8-bit RGB for the browser."""
    if np.issubdtype(image.dtype, np.floating):
        image = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    if image.ndim == 2:
        image = image[..., None]
    colour = image[..., :1] if image.shape[2] <= 2 else image[..., 2::-1]  # gray, or BGR(A) reversed to RGB
    return np.ascontiguousarray(np.broadcast_to(colour, (*image.shape[:2], 3)))
