"""Stochastic depth for the residual branches: timm's ``DropPath``, imported only when a block drops paths.

A network built for inference (``load_model``, ``hat-sr``, the web page) has no stochastic depth, so it never imports
timm, whose package init takes about 2 s (torchvision's feature extraction and ``torch._dynamo``); training with
``drop_path_rate`` > 0 does.
"""
from __future__ import annotations

from torch import nn


def drop_path(rate: float) -> nn.Module:
    """``timm.layers.DropPath(rate)`` for a rate above 0, else an identity."""
    if rate <= 0.0:
        return nn.Identity()
    from timm.layers import DropPath

    return DropPath(rate)
