"""Image files: read upright as viewers show them, in OpenCV's layout; written atomically."""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from hat_arch import HatError
from hat_arch.image_io import (EXIF_ORIENTATION, exif_orientation, for_format, image_shape, is_image_name,
                               read_dataset_image, read_header, read_image)


def test_extensions_match_in_any_case():
    assert is_image_name('n01440764_10026.JPEG') and is_image_name('a/b.Png') and not is_image_name('notes.txt')


@pytest.mark.parametrize('orientation', range(1, 9))
def test_exif_orientation_is_applied_as_viewers_apply_it(tmp_path, orientation):
    # A phone stores a portrait photo as landscape pixels plus an orientation tag; OpenCV's IMREAD_UNCHANGED ignores
    # the tag. Pillow's exif_transpose is the reference for what a viewer shows.
    y, x = np.mgrid[:32, :48]
    pixels = (x * 4 + (y < 8) * 60).astype(np.uint8)  # a ramp along x and a bright band at the top: no symmetry
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    path = tmp_path / 'photo.jpg'
    Image.fromarray(pixels).save(path, quality=100, exif=exif.tobytes())

    with Image.open(path) as stored:
        upright = np.asarray(ImageOps.exif_transpose(stored))
    image = read_image(path)
    assert image.shape == upright.shape == ((32, 48) if orientation <= 4 else (48, 32))
    assert np.abs(image.astype(int) - upright).max() <= 2  # two JPEG decoders
    assert image.flags.c_contiguous


@pytest.mark.parametrize('exif', [None, b'Exif\x00\x00garbage'], ids=['no EXIF', 'damaged EXIF'])
def test_a_photo_without_a_usable_orientation_is_read_as_stored(tmp_path, exif):
    y, x = np.mgrid[:32, :48]
    pixels = (x * 4 + (y < 8) * 60).astype(np.uint8)
    path = tmp_path / 'photo.jpg'
    Image.fromarray(pixels).save(path, quality=100, **({'exif': exif} if exif else {}))
    with Image.open(path) as stored:
        as_stored = np.asarray(stored)
    image = read_image(path)
    assert image.shape == (32, 48) and np.abs(image.astype(int) - as_stored).max() <= 2


def test_pngs_and_what_pillow_cannot_identify_count_as_upright(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(pixels).save(tmp_path / 'odd.png')
    np.testing.assert_array_equal(read_image(tmp_path / 'odd.png'), pixels)  # without decoding it twice
    assert exif_orientation(np.frombuffer(b'not an image at all', dtype=np.uint8)) == 1


def test_huge_photos_pass_pillows_decompression_bomb_check(tmp_path, monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; only the header is read here, so neither
    # may stop or clutter a run: up to twice the limit the orientation is applied, beyond it the pixels stay as stored.
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    Image.fromarray(np.zeros((4, 6), np.uint8)).save(tmp_path / 'big.jpg', exif=exif.tobytes())  # 24 pixels
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 20)
        assert read_image(tmp_path / 'big.jpg').shape == (6, 4)
        monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10)
        assert read_image(tmp_path / 'big.jpg').shape == (4, 6)


def test_for_format_keeps_what_the_format_holds(tmp_path):
    deep = np.full((2, 2, 3), 65535, np.uint16)
    assert for_format(deep, tmp_path / 'a.png').dtype == np.uint16  # PNG keeps 16 bits
    assert (for_format(deep, tmp_path / 'a.webp') == 255).all()  # WebP and JPEG take 8
    assert for_format(np.ones((2, 2), np.float32), tmp_path / 'a.png').max() == 65535  # floats become 16-bit
    gray_alpha = for_format(np.zeros((2, 2, 2), np.uint8), tmp_path / 'a.png')
    assert gray_alpha.shape == (2, 2, 4)  # OpenCV writes gray, BGR or BGRA
    with pytest.raises(HatError, match='transparency, which JPEG cannot store'):
        for_format(np.zeros((2, 2, 4), np.uint8), tmp_path / 'a.jpg')


@pytest.mark.parametrize('name, pixels', [
    ('gray.png', np.arange(48, dtype=np.uint8).reshape(6, 8)),
    ('deep.png', np.arange(144, dtype=np.uint16).reshape(6, 8, 3) * 401),
    ('alpha.png', np.arange(192, dtype=np.uint8).reshape(6, 8, 4)),
    ('photo.jpg', np.arange(144, dtype=np.uint8).reshape(6, 8, 3)),
])
def test_dataset_images_read_as_basicsr_datasets_read_them(tmp_path, name, pixels):
    import hat_arch  # noqa: F401  (BasicSR imports on today's torchvision)
    from basicsr.utils import FileClient, imfrombytes

    assert cv2.imwrite(str(tmp_path / name), pixels)
    client = FileClient('disk')
    expected = imfrombytes(client.get(str(tmp_path / name)), float32=True)
    image = read_dataset_image(client, str(tmp_path / name))
    assert image.dtype == expected.dtype == np.float32 and image.shape == expected.shape
    np.testing.assert_array_equal(image, expected)


def test_dataset_images_that_cannot_be_read_are_named_in_one_line(tmp_path):
    from basicsr.utils import FileClient

    damaged = tmp_path / 'damaged.png'
    damaged.write_bytes(b'\x89PNG\r\n\x1a\n cut short')
    with pytest.raises(HatError, match=f'^cannot read {damaged}: not an image OpenCV can decode'):
        read_dataset_image(FileClient('disk'), str(damaged))
    with pytest.raises(HatError, match=f'^cannot read {tmp_path / "gone.png"}: No such file or directory$'):
        read_dataset_image(FileClient('disk'), str(tmp_path / 'gone.png'))

    class LmdbWithout:  # BasicSR's LMDB backend returns None for a key it does not hold
        def get(self, path, client_key):
            return None

    with pytest.raises(HatError, match='^cannot read 0001_s001: no such key in the LMDB$'):
        read_dataset_image(LmdbWithout(), '0001_s001', 'gt')


def test_image_shape_reads_headers_and_names_what_is_not_an_image(tmp_path):
    assert cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((5, 7, 4), np.uint8))
    assert image_shape(tmp_path / 'a.png') == (5, 7, 4)
    assert cv2.imwrite(str(tmp_path / 'a.pfm'), np.zeros((5, 7, 3), np.float32))  # a format Pillow cannot parse
    assert read_header(tmp_path / 'a.pfm') is None and image_shape(tmp_path / 'a.pfm') == (5, 7, 3)
    (tmp_path / 'notes.png').write_text('not an image')
    with pytest.raises(HatError, match=f'^cannot read {tmp_path / "notes.png"}: not an image OpenCV can decode'):
        image_shape(tmp_path / 'notes.png')
