"""What one input image may cost: its size, read from the file's header, against the memory there is, before decoding.

A 2.6 MB PNG can declare 30000x30000 pixels: decoded it is 2.7 GB, its float32 planes 11 GB, and its x4 output 17
times that. Every command that reads images calls :func:`check_image_memory` with the file first: the image is
refused in one line naming the sizes, unless the user lifts the limit on purpose with ``max_pixels``
(``--max-pixels``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from hat_arch.errors import HatError
from hat_arch.image_io import ImageHeader, read_header

# Share of the available memory one image's arrays may take; the rest is for the network (its tiles fit what is left).
MEMORY_HEADROOM = 0.5
FLOAT32 = 4
FLOAT64 = 8
NETWORK_CHANNELS = 3  # a gray image runs through a colour model as gray RGB: its output tensors have 3 channels


def upscale_bytes(header: ImageHeader, scale: int) -> int:
    """Peak memory of upscaling an image by ``scale`` outside the network (``hat_arch.upscale``): the decoded image,
    its float32 planes twice (converted, then laid out for torch), the float32 output with its blending weights and
    their quotient, then the output clipped, rounded and converted back."""
    output_pixels = header.pixels * scale**2
    planes = header.channels
    return (header.decoded_bytes + header.pixels * planes * 2 * FLOAT32
            + output_pixels * (2 * NETWORK_CHANNELS * FLOAT32 + FLOAT32 + planes * (3 * FLOAT32 + header.sample_bytes)))


def downscale_bytes(header: ImageHeader) -> int:
    """Peak memory of MATLAB-bicubic downscaling (``basicsr prepare``): the decoded image, its float64 copy and the
    float64 result of the first (row) pass."""
    return header.decoded_bytes + header.pixels * header.channels * 2 * FLOAT64


def available_memory() -> int:
    """Bytes the system can give without swapping (Linux ``MemAvailable``); elsewhere half the physical memory, or
    8 GiB if even that is unknown."""
    try:
        with open('/proc/meminfo') as meminfo:
            fields = dict(line.split(':', 1) for line in meminfo)
        return int(fields['MemAvailable'].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        try:
            return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2
        except (AttributeError, ValueError, OSError):
            return 8 * 2**30


def check_image_memory(path: str | Path, needed: Callable[[ImageHeader], int], task: str,
                       max_pixels: int | None = None, remedy: str | None = None) -> ImageHeader | None:
    """The header of the image at ``path``; HatError if the image is too large to ``task`` (e.g. 'upscale x4').

    With ``max_pixels`` None, too large means that ``needed(header)`` bytes exceed :data:`MEMORY_HEADROOM` of the
    available memory; with a number, that the image has more pixels than that (the user's own limit, which may exceed
    the memory there is on purpose). None if the header cannot be read (the decoder then says what is wrong).
    """
    header = read_header(path)
    if header is None:
        return None
    size = f'{header.width}x{header.height}'
    if max_pixels is not None:
        if header.pixels > max_pixels:
            raise HatError(f'{path}: {size} is {header.pixels} pixels, more than --max-pixels {max_pixels}')
        return header
    bytes_needed, budget = needed(header), MEMORY_HEADROOM * available_memory()
    if bytes_needed > budget:
        raise HatError(f'{path}: {size} pixels would take about {_gib(bytes_needed)} of memory to {task}; '
                       f'{_gib(budget)} can be spared (of {_gib(available_memory())} available). '
                       + (remedy or f'--max-pixels {header.pixels} would try anyway'))
    return header


def _gib(size: float) -> str:
    return f'{size / 2**30:.1f} GiB'
