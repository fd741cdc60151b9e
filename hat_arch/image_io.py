"""Every image hat_arch reads or writes: headers, a user's files, datasets' images; as OpenCV holds them (HxW gray,
HxWx3 BGR, HxWx4 BGRA; uint8 or uint16).

Three ways in, one decoder (its failures are one line naming the file, with what the C decoder said):

- :func:`read_header`: the size and mode from the header alone, before anything is decoded (what an image will cost
  is checked first, :mod:`hat_arch.image_memory`);
- :func:`read_image`: a user's file as it is (channels, bit depth, alpha), the way viewers show it (EXIF orientation
  applied); of an animated or multi-page file (GIF, TIFF), the first frame;
- :func:`read_dataset_image`: a training or evaluation image through BasicSR's file client (a folder or an LMDB), read
  exactly as BasicSR's datasets read it (3-channel BGR, 8 bits, float32 in [0, 1]), so that a recipe trains and
  scores the same with hat_arch's datasets as with BasicSR's.

Paths go through ``numpy`` and ``cv2.imdecode`` / ``cv2.imencode`` so names that ``cv2.imread`` cannot open (non-ASCII
on Windows) work too. Writes are atomic: a file appears complete or not at all.
"""
from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

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


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: its size, Pillow's mode and bands, and whether it holds several frames."""
    width: int
    height: int
    mode: str
    bands: int
    frames: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def channels(self) -> int:
        """Channels it decodes to; an upper bound for a palette, which OpenCV may decode to BGRA."""
        return 4 if self.mode in ('P', 'PA') else self.bands

    @property
    def sample_bytes(self) -> int:
        return 4 if self.mode in ('I', 'F') else 2 if '16' in self.mode else 1

    @property
    def decoded_bytes(self) -> int:
        return self.pixels * self.channels * self.sample_bytes


def read_header(path: str | Path) -> ImageHeader | None:
    """The header of the image at ``path``, read by Pillow without decoding; None if Pillow cannot parse it (OpenCV may
    still decode it, or say it cannot)."""
    try:
        with _without_pillow_bomb_limit(), Image.open(path) as image:
            width, height = image.size
            return ImageHeader(width, height, image.mode, len(image.getbands()),
                               bool(getattr(image, 'is_animated', False)))
    except Exception:  # noqa: BLE001  Pillow's format plugins raise many types for what they cannot parse
        return None


_PILLOW_LIMIT = threading.Lock()


@contextmanager
def _without_pillow_bomb_limit() -> Iterator[None]:
    # Pillow refuses (DecompressionBombError, with a traceback) or warns about an image of over 89 M pixels as soon
    # as it reads the header, before telling its size: hat_arch.image_memory's check, which knows the memory there
    # is, replaces it while the header is read. The lock keeps two threads from restoring each other's value.
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter('ignore', Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def image_shape(path: str | Path) -> tuple[int, int, int]:
    """(h, w, channels) of an image file, from its header when Pillow can parse it, else decoded; a one-line HatError
    naming it if it is not an image."""
    header = read_header(path)
    if header is not None:
        return header.height, header.width, header.bands
    image = read_image(path)
    return image.shape[0], image.shape[1], 1 if image.ndim == 2 else image.shape[2]


def read_image(path: str | Path) -> np.ndarray:
    """The image at ``path`` with its channels and bit depth unchanged; HatError naming it if it cannot be read."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise HatError(f'cannot read {path}: {first_line(error)}') from None
    image = _decode(data, path, cv2.IMREAD_UNCHANGED)
    upright = _UPRIGHT.get(exif_orientation(data))
    return np.ascontiguousarray(upright(image)) if upright else image


def read_dataset_image(file_client: Any, path: str, client_key: str = 'default') -> np.ndarray:
    """The image ``path`` of a dataset, from BasicSR's ``file_client`` (``client_key`` names the LMDB of an LMDB
    backend), as BasicSR's ``imfrombytes(content, float32=True)`` gives it: BGR float32 in [0, 1]; HatError naming it
    if it cannot be read."""
    try:
        content = file_client.get(path, client_key)
    except OSError as error:  # a file gone
        raise HatError(f'cannot read {path}: {first_line(error)}') from None
    if content is None:  # a key the LMDB does not hold
        raise HatError(f'cannot read {path}: no such key in the LMDB')
    data = np.frombuffer(content, np.uint8)
    # Decoded as BasicSR does, with nothing caught: this runs for every training sample.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return (image if image is not None else _decode(data, path, cv2.IMREAD_COLOR)).astype(np.float32) / 255.


def _decode(data: np.ndarray, path: str | Path, flags: int) -> np.ndarray:
    """``data`` decoded, what the C decoder prints kept from the terminal; HatError naming ``path`` with what it said
    if it cannot be."""
    with _decoder_messages() as said:
        image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise HatError(f'cannot read {path}: not an image OpenCV can decode (corrupt, empty or unsupported)'
                       + (f': {said[0]}' if said else ''))
    return image


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
