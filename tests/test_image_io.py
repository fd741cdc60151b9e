"""Image files: read upright as viewers show them, in OpenCV's layout; written atomically."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from hat_arch.image_io import EXIF_ORIENTATION, is_image_name, read_image


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


def test_damaged_exif_reads_the_pixels_as_stored(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    path = tmp_path / 'odd.png'
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(read_image(path), pixels)  # PNG: read as stored, without a second decode
    path = tmp_path / 'odd.jpg'
    Image.fromarray(pixels).save(path, quality=100, exif=b'Exif\x00\x00garbage')
    assert read_image(path).shape == (6, 8)
