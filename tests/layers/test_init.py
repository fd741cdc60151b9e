"""Weight initialisation: the reference's (timm's trunc_normal_) when a network is trained, none when it is loaded."""
from __future__ import annotations

import pytest
import torch
from timm.layers import trunc_normal_ as timm_trunc_normal_

from hat_arch.layers.init import trunc_normal_, weights_loaded_after


def test_a_seed_gives_timms_weights():
    torch.manual_seed(3)
    ours = trunc_normal_(torch.empty(50, 20), std=.02)
    torch.manual_seed(3)
    assert torch.equal(ours, timm_trunc_normal_(torch.empty(50, 20), std=.02))
    assert ours.abs().max() <= 2.0 and 0.015 < ours.std() < 0.025


def test_nothing_is_filled_for_weights_loaded_after_and_the_switch_ends_with_the_block():
    tensor = torch.full((4, 4), 7.0)
    with weights_loaded_after():
        assert trunc_normal_(tensor, std=.02) is tensor and (tensor == 7.0).all()
    trunc_normal_(tensor, std=.02)
    assert (tensor != 7.0).all()


def test_a_meta_tensor_is_left_alone_and_the_rng_untouched(monkeypatch):
    import timm.layers

    monkeypatch.setattr(timm.layers, 'trunc_normal_', lambda *args, **kwargs: pytest.fail('sampled on meta'))
    state = torch.random.get_rng_state()
    tensor = torch.empty(180, 180, device='meta')
    assert trunc_normal_(tensor, std=.02) is tensor
    assert torch.equal(torch.random.get_rng_state(), state)
