"""Stochastic depth: timm's DropPath when a block drops paths, an identity when none does; a network built to be
loaded, without stochastic depth, imports no timm."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from timm.layers import DropPath
from torch import nn

from hat_arch.layers.drop_path import drop_path


def test_a_rate_above_zero_is_timms_drop_path_and_zero_is_an_identity():
    layer = drop_path(0.25)
    assert isinstance(layer, DropPath) and layer.drop_prob == 0.25
    assert isinstance(drop_path(0.0), nn.Identity)
    x = torch.ones(64, 3)
    assert (layer.train()(x) == 0).all(1).any()  # some samples' branches dropped
    assert torch.equal(layer.eval()(x), x)


@pytest.mark.slow
def test_a_network_built_for_loading_without_stochastic_depth_does_not_import_timm():
    code = ('import sys\nfrom hat_arch.archs.hat_arch import HAT\n'
            'from hat_arch.layers.init import weights_loaded_after\n'
            "with weights_loaded_after():\n"
            "    HAT(embed_dim=12, depths=[1], num_heads=[2], window_size=4, compress_ratio=3, squeeze_factor=2,"
            " drop_path_rate=0.0)\nassert 'timm' not in sys.modules, 'timm imported'\n"
            "HAT(embed_dim=12, depths=[2], num_heads=[2], window_size=4, compress_ratio=3, squeeze_factor=2,"
            " drop_path_rate=0.1)\nassert 'timm' in sys.modules\n")
    subprocess.run([sys.executable, '-c', code], check=True)
