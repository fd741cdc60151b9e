"""Argument types shared by the commands: a bad value is refused by argparse with one line naming the flag."""
from __future__ import annotations

import argparse


def _is_whole_number(text: str) -> bool:
    # ASCII digits only: '³'.isdigit() is True, but int('³') fails and argparse would name this module's function.
    return text.isascii() and text.isdigit()


def non_negative_int(text: str) -> int:
    if not _is_whole_number(text):
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {text!r}')
    return int(text)


def positive_int(text: str) -> int:
    if not _is_whole_number(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    return int(text)


def tile_size(text: str) -> int | str:
    if text == 'auto':
        return text
    if _is_whole_number(text):
        return int(text)
    raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels (0: no tiles), got {text!r}")


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels``: the user's own limit on an input's size, replacing the check against available memory."""
    parser.add_argument('--max-pixels', type=positive_int, default=None, metavar='N',
                        help='accept images of up to N pixels (width x height) even if they may not fit in memory '
                        '(default: refuse an image whose decoding, intermediates or output would not fit in half '
                        'the available memory)')


def _number(text: str) -> float:
    """``text`` as a float; NaN (which every range check refuses) if it is not a number."""
    try:
        return float(text)
    except ValueError:
        return float('nan')


def non_negative_float(text: str) -> float:
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f'expected a number >= 0, got {text!r}')
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}')
    return value
