"""state_dict.py: a state dict compared with the one a network expects, in one short line."""
from __future__ import annotations

import torch

from hat_arch.state_dict import StateDictMismatch, describe_state_dict_mismatch


def tensors(**shapes) -> dict[str, torch.Tensor]:
    return {name: torch.zeros(shape) for name, shape in shapes.items()}


def test_the_same_keys_and_shapes_are_no_mismatch():
    assert describe_state_dict_mismatch(tensors(a=(2, 3), b=(4,)), tensors(b=(4,), a=(2, 3))) == ''


def test_missing_unexpected_and_reshaped_tensors_are_named_in_that_order():
    expected = tensors(a=(2, 3), b=(4,), c=(1,))
    given = tensors(a=(3, 2), c=(1,), extra=(5,))
    assert describe_state_dict_mismatch(expected, given) == \
        'missing (1): b; unexpected (1): extra; shape mismatch (1): a (3, 2) vs (2, 3) expected'


def test_long_lists_are_cut_at_the_limit_with_a_count():
    expected = tensors(**{f'layer{i}': (1,) for i in range(5)})
    assert describe_state_dict_mismatch(expected, {}, limit=2) == 'missing (5): layer0, layer1 (+3 more)'


def test_the_error_names_the_problem():
    error = StateDictMismatch('missing (1): b')
    assert str(error) == 'state dict does not fit this HAT: missing (1): b' and error.problem == 'missing (1): b'
