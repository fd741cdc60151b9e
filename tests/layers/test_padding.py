"""Reflect padding to a window multiple: torch's reflect where that applies, repeated reflection past it."""
from __future__ import annotations

import pytest
import torch

from hat_arch.layers.padding import reflect_pad_to_multiple


@pytest.mark.parametrize('h, w', [(13, 19), (8, 5), (16, 16)])
def test_pads_bottom_right_as_torch_reflect(h, w):
    x = torch.rand(1, 2, h, w)
    expected = torch.nn.functional.pad(x, (0, -w % 8, 0, -h % 8), mode='reflect')
    assert torch.equal(reflect_pad_to_multiple(x, 8), expected)


def test_inputs_smaller_than_the_padding_reflect_repeatedly_and_one_row_repeats():
    x = torch.arange(3.0).view(1, 1, 1, 3)
    assert reflect_pad_to_multiple(x, 8)[0, 0].tolist() == [[0, 1, 2, 1, 0, 1, 2, 1]] * 8
