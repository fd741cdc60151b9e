"""layers/context.py: the attention path is checked by name, and each path's context holds what it reads."""
from __future__ import annotations

import pytest
import torch

from hat_arch.layers.context import block_context, check_attn_impl, forward_attn_impl
from hat_arch.layers.windows import shift_region_masks, shift_window_mask

WINDOW, SHIFT = 4, 2


def test_only_the_two_paths_are_accepted():
    check_attn_impl('sdpa')
    check_attn_impl('naive')
    with pytest.raises(ValueError, match=r"^attn_impl 'flash' is not one of \('sdpa', 'naive'\)$"):
        check_attn_impl('flash')


def test_a_forward_traced_for_onnx_takes_the_naive_path(monkeypatch):
    assert (forward_attn_impl('sdpa'), forward_attn_impl('naive')) == ('sdpa', 'naive')
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)
    assert (forward_attn_impl('sdpa'), forward_attn_impl('naive')) == ('naive', 'naive')


@pytest.mark.parametrize('attn_impl', ['naive', 'sdpa'])
def test_each_path_gets_the_fields_it_reads_and_only_those(attn_impl):
    masks = shift_region_masks(WINDOW, SHIFT)
    rpi_sa, rpi_oca = torch.zeros(16, 16, dtype=torch.long), torch.zeros(16, 36, dtype=torch.long)
    context = block_context(attn_impl, torch.Size((2, 8, 3 * WINDOW, 2 * WINDOW)), WINDOW, SHIFT, rpi_sa, rpi_oca,
                            masks)
    assert context.naive == (attn_impl == 'naive') and context.rpi_sa is rpi_sa and context.rpi_oca is rpi_oca
    if attn_impl == 'naive':
        assert torch.equal(context.shift_mask, shift_window_mask(masks, 3, 2)) and context.shift_mask.shape[0] == 6
        assert context.windows is None and context.shifted_windows is None
    else:
        assert context.shift_mask is None and context.windows is not None and context.shifted_windows is not None
