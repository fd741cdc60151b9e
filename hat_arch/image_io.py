"""Reading and writing images as OpenCV does (HxW gray, HxWx3 BGR, HxWx4 BGRA; uint8 or uint16), any path.

Paths go through ``numpy`` and ``cv2.imdecode`` / ``cv2.imencode`` so names that ``cv2.imread`` cannot open (non-ASCII
on Windows) work too. Images are read the way viewers show them (EXIF orientation applied); of an animated or
multi-page file (GIF, TIFF), the first frame. Writes are atomic: a file appears complete or not at all.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from PIL import Image

from hat_arch.atomic_write import write_bytes_atomic
from hat_arch.errors import HatError, first_line

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.webp', '.bmp', '.tif', '.tiff', '.ppm', '.pgm', '.gif')
OUTPUT_EXTENSIONS = ('png', 'jpg', 'webp')  # what hat-sr upscale writes
EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the numpy operation that turns the stored pixels upright (2-4 mirror or rotate by 180 degrees;
# 5-8 also swap the axes).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def is_image_name(name: str | Path) -> bool:
    """Whether ``name`` has one of :data:`IMAGE_EXTENSIONS`, in any case (ImageNet's files end in ``.JPEG``)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` with its channels and bit depth unchanged; HatError naming it if it cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise HatError(f'cannot read {path}: {first_line(error)}') from None
    with _decoder_messages() as said:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise HatError(f'cannot read {path}: not an image OpenCV can decode (corrupt, empty or unsupported)'
                       + (f': {said[0]}' if said else ''))
    upright = _UPRIGHT.get(exif_orientation(data))
    return np.ascontiguousarray(upright(image)) if upright else image


_STDERR = threading.Lock()


@contextmanager
def _decoder_messages() -> Iterator[list[str]]:
    """Keep what the C decoders print on file descriptor 2 ('libpng error: PNG input buffer is incomplete') from
    the terminal; yields a list that receives its non-blank lines, for the error message. Thread-safe; other output of
    the process on fd 2 meanwhile is caught too, so only the decoding is wrapped."""
    lines: list[str] = []
    with _STDERR, tempfile.TemporaryFile() as held:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines += [line.strip() for line in held.read().decode(errors='replace').splitlines() if line.strip()]


def exif_orientation(data: np.ndarray) -> int:
    """The EXIF orientation (1-8; 1 = stored upright) of an encoded image, read from its header by Pillow.

    ``cv2.IMREAD_UNCHANGED``, needed for 16 bits and alpha, ignores it: a phone's portrait photo would be processed
    lying on its side. PNGs count as upright: Pillow would decode the whole image to find their EXIF chunk.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # only the header is read
            with Image.open(io.BytesIO(data.tobytes())) as header:
                if header.format == 'PNG':
                    return 1
                return int(header.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001  Pillow's format plugins raise many types for what they cannot parse: as stored
        return 1


def write_image(path: str | Path, image: np.ndarray, params: Sequence[int] = (), durable: bool = True) -> None:
    """Encode ``image`` in the format of ``path``'s extension (with OpenCV's ``params``, e.g.
    ``[cv2.IMWRITE_PNG_COMPRESSION, 3]``) and write it with :func:`hat_arch.atomic_write.write_atomic` (``durable``:
    fsynced); HatError if that fails."""
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, image, list(params))
    if not ok:
        raise HatError(f'cannot encode {path.name} as {path.suffix} ({image.dtype}, {image.shape})')
    write_bytes_atomic(path, encoded.data, durable)


def basicsr_imwrite(img: np.ndarray, file_path: str, params: Sequence[int] | None = None,
                    auto_mkdir: bool = True) -> None:
    """BasicSR's ``imwrite`` (``basicsr.utils.imwrite``: validation and test images) through :func:`write_image`."""
    if auto_mkdir:
        os.makedirs(os.path.dirname(os.path.abspath(file_path)), exist_ok=True)
    write_image(file_path, img, params or ())


def output_extension(source: str | Path, ext: str = 'auto') -> str:
    """The output format for ``source``: ``ext``, or with 'auto' the source's own if png, jpg or webp, else png."""
    extension = ext if ext != 'auto' else Path(source).suffix.lower().lstrip('.')
    return extension if extension in (*OUTPUT_EXTENSIONS, 'jpeg') else 'png'


def output_name(source: str | Path, suffix: str = '', ext: str = 'auto') -> str:
    """The name of ``source``'s result, as ``hat-sr upscale`` and the page name it: its stem, ``suffix`` and
    :func:`output_extension` (``baby.bmp`` -> ``baby.png``)."""
    return f'{Path(source).stem}{suffix}.{output_extension(source, ext)}'


def for_format(image: np.ndarray, target: Path) -> np.ndarray:
    """``image`` as ``target``'s format can hold it: PNG keeps 16 bits; JPEG and WebP take 8; JPEG has no alpha.
    Float images (32-bit TIFFs) become 16-bit: OpenCV would write their [0, 1] values unscaled, as a black image."""
    if np.issubdtype(image.dtype, np.floating):
        image = np.rint(np.clip(image, 0.0, 1.0) * 65535.0).astype(np.uint16)
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 2:  # gray + alpha: OpenCV writes gray, BGR or BGRA
        image = np.concatenate([np.repeat(image[..., :1], 3, axis=2), image[..., 1:]], axis=2)
    if target.suffix == '.png':
        return image
    if channels in (2, 4) and target.suffix in ('.jpg', '.jpeg'):
        raise HatError('it has transparency, which JPEG cannot store; use --ext png or webp')
    if image.dtype == np.uint16:
        image = np.rint(image / 257.0).astype(np.uint8)
    return image
