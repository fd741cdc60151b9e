"""Argument types shared by the commands: a bad value is refused by argparse with one line naming the flag."""
from __future__ import annotations

import argparse


def non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f'expected an integer >= 0, got {text!r}')
    return int(text)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    return int(text)


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
