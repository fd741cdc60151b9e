"""Weight initialisation: the reference's (timm's trunc_normal_) when a network is trained, none when it is loaded."""
from __future__ import annotations

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
