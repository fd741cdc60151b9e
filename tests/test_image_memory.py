"""An image's cost is judged from its header, before decoding: a small PNG declaring 30000x30000 pixels is refused."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import pytest
from PIL import Image

from hat_arch import image_io, image_memory
from hat_arch.errors import HatError

ROWS_PER_BLOCK = 500


def write_black_png(path: Path, width: int, height: int) -> Path:
    """A valid 8-bit gray PNG of zeros, ``width`` x ``height``, written in well under a second: one block of rows is
    deflated once, ending with a full flush (byte-aligned, window reset), so the same bytes encode every repetition."""
    assert height % ROWS_PER_BLOCK == 0
    deflate = zlib.compressobj(9)
    rows = bytes((width + 1) * ROWS_PER_BLOCK)  # each row: filter byte 0, then the pixels
    first = deflate.compress(rows) + deflate.flush(zlib.Z_FULL_FLUSH)  # with the 2-byte zlib header
    again = deflate.compress(rows) + deflate.flush(zlib.Z_FULL_FLUSH)
    final_block = deflate.flush()[:-4]  # without the checksum of the two blocks it saw
    checksum = ((width + 1) * height % 65521) << 16 | 1  # Adler-32 of that many zero bytes
    idat = first + again * (height // ROWS_PER_BLOCK - 1) + final_block + struct.pack('>I', checksum)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    header = struct.pack('>IIBBBBB', width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) + chunk(b'IDAT', idat) + chunk(b'IEND', b''))
    return path


def test_the_png_maker_writes_a_valid_png(tmp_path):
    image = cv2.imread(str(write_black_png(tmp_path / 'black.png', 300, 1500)), cv2.IMREAD_UNCHANGED)
    assert image.shape == (1500, 300) and not image.any()


def test_a_huge_image_is_refused_from_its_header_naming_sizes_and_the_option(tmp_path, monkeypatch):
    bomb = write_black_png(tmp_path / 'bomb.png', 30000, 30000)
    assert bomb.stat().st_size < 3_000_000
    with pytest.raises(Image.DecompressionBombError):  # what Pillow alone does with it: a traceback
        Image.open(bomb)
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 64 * 2**30)
    with pytest.raises(HatError) as refused:
        image_memory.check_image_memory(bomb, lambda h: image_memory.upscale_bytes(h, 4), 'upscale x4')
    message = str(refused.value)
    assert message.startswith(f'{bomb}: 30000x30000 pixels would take about ')
    assert 'to upscale x4; 32.0 GiB can be spared (of 64.0 GiB available). --max-pixels 900000000' in message
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is back for everyone else


def test_max_pixels_replaces_the_memory_check(tmp_path, monkeypatch):
    image = write_black_png(tmp_path / 'a.png', 1000, 1000)
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 2**20)  # 1 MiB: the estimate does not fit
    upscale = lambda h: image_memory.upscale_bytes(h, 4)  # noqa: E731
    with pytest.raises(HatError, match='would take about'):
        image_memory.check_image_memory(image, upscale, 'upscale x4')
    assert image_memory.check_image_memory(image, upscale, 'upscale x4', max_pixels=10**6).pixels == 10**6
    with pytest.raises(HatError, match=rf'{image}: 1000x1000 is 1000000 pixels, more than --max-pixels 999999$'):
        image_memory.check_image_memory(image, upscale, 'upscale x4', max_pixels=999_999)


def test_the_estimates_count_the_float_copies_and_the_output_at_its_scale():
    header = image_io.ImageHeader(width=100, height=50, mode='RGB', bands=3)
    assert image_memory.upscale_bytes(header, 4) >= header.pixels * 16 * 3 * image_memory.FLOAT32 * 2
    assert image_memory.downscale_bytes(header) == header.pixels * 3 * (1 + 16)


def test_a_file_pillow_cannot_parse_has_no_header(tmp_path):
    (tmp_path / 'x.png').write_bytes(b'not an image')
    assert image_io.read_header(tmp_path / 'x.png') is None
    assert image_memory.check_image_memory(tmp_path / 'x.png', image_memory.downscale_bytes, 'read') is None
