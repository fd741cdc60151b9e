"""Reading and writing images as OpenCV does (HxW gray, HxWx3 BGR, HxWx4 BGRA; uint8 or uint16), any path.

Paths go through ``numpy`` and ``cv2.imdecode`` / ``cv2.imencode`` so names that ``cv2.imread`` cannot open (non-ASCII
on Windows) work too. Writes are atomic: a file appears complete or not at all.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from hat_arch.errors import HatError

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.ppm', '.pgm')


def is_image_name(name: str | Path) -> bool:
    """Whether ``name`` has one of :data:`IMAGE_EXTENSIONS`, in any case (ImageNet's files end in ``.JPEG``)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` with its channels and bit depth unchanged; HatError naming it if it cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise HatError(f'cannot read {path}: {error.strerror or error}') from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise HatError(f'cannot read {path}: not an image OpenCV can decode (corrupt, empty or unsupported)')
    return image


def write_image(path: str | Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode ``image`` in the format of ``path``'s extension (with OpenCV's ``params``, e.g.
    ``[cv2.IMWRITE_PNG_COMPRESSION, 3]``) and write it atomically; HatError if that fails."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise HatError(f'cannot encode {path.name} as {path.suffix} ({image.dtype}, {image.shape})')
    temporary = path.with_name(f'.{path.stem}.{os.getpid()}.partial{path.suffix}')
    try:
        temporary.write_bytes(encoded.tobytes())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise HatError(f'cannot write {path}: {error.strerror or error}') from None
