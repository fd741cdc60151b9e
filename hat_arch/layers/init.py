"""Weight initialisation: timm's ``trunc_normal_``, as the reference, so that a seed gives the reference's weights.

timm is imported only when a network is initialised to be trained: its package init takes about 2 s (torchvision's
feature extraction and ``torch._dynamo``), and a network built to receive a checkpoint's weights
(:func:`weights_loaded_after`, used by ``load_model``) has nothing to initialise. (PyTorch's own ``trunc_normal_``
samples the same distribution in another way since torch 2.14, so a seed would give other weights.)
"""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from typing import Iterator

import torch

_WEIGHTS_LOADED_AFTER = contextvars.ContextVar('hat_arch_weights_loaded_after', default=False)


@contextmanager
def weights_loaded_after() -> Iterator[None]:
    """Networks built inside skip :func:`trunc_normal_`: every weight it would fill is about to be loaded."""
    token = _WEIGHTS_LOADED_AFTER.set(True)
    try:
        yield
    finally:
        _WEIGHTS_LOADED_AFTER.reset(token)


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """``timm.layers.trunc_normal_(tensor, std=std)``; ``tensor`` unchanged inside :func:`weights_loaded_after` and
    on the meta device, which holds shapes only (and where timm's sampling runs torch's slow reference ops)."""
    if _WEIGHTS_LOADED_AFTER.get() or tensor.is_meta:
        return tensor
    from timm.layers import trunc_normal_ as timm_trunc_normal_

    return timm_trunc_normal_(tensor, std=std)
