"""cli/arguments.py: argument types that refuse a bad value with a message naming it."""
from __future__ import annotations

import argparse

import pytest

from hat_arch.cli.arguments import non_negative_float, non_negative_int, positive_float, positive_int, tile_size


@pytest.mark.parametrize('kind, text, value', [
    (non_negative_int, '0', 0), (positive_int, '12', 12), (non_negative_float, '0', 0.0), (positive_float, '2.5', 2.5),
    (positive_float, '1e-3', 0.001), (tile_size, 'auto', 'auto'), (tile_size, '0', 0), (tile_size, '256', 256),
])
def test_good_values_are_converted(kind, text, value):
    assert kind(text) == value and type(kind(text)) is type(value)


@pytest.mark.parametrize('kind, text, message', [
    (non_negative_int, '-1', "expected an integer >= 0, got '-1'"),
    (non_negative_int, '1.5', "expected an integer >= 0, got '1.5'"),
    (positive_int, '0', "expected a positive integer, got '0'"),
    (positive_int, '\u00b3', "expected a positive integer, got '\u00b3'"),  # a digit to str.isdigit, not to int()
    (non_negative_float, '-0.1', "expected a number >= 0, got '-0.1'"),
    (non_negative_float, 'nan', "expected a number >= 0, got 'nan'"),
    (positive_float, '0', "expected a positive number, got '0'"),
    (positive_float, 'inf', "expected a positive number, got 'inf'"),
    (positive_float, 'big', "expected a positive number, got 'big'"),
    (tile_size, 'Auto', "expected 'auto' or a number of pixels (0: no tiles), got 'Auto'"),
    (tile_size, '-64', "expected 'auto' or a number of pixels (0: no tiles), got '-64'"),
])
def test_bad_values_are_refused_by_name(kind, text, message):
    with pytest.raises(argparse.ArgumentTypeError) as error:
        kind(text)
    assert str(error.value) == message
