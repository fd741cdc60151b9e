"""Reflect padding to a multiple of the window size, valid for every input size when traced."""
from __future__ import annotations

import torch


def reflect_index(size: int | torch.Tensor, target: int | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Source index of each of ``target`` positions of an axis of ``size`` samples reflected past its end as often as
    needed: 0 1 .. size-1 size-2 .. 1 0 1 ..; a single sample repeats."""
    period = torch.as_tensor(2 * (size - 1), device=device).clamp(min=1)
    index = torch.arange(target, device=device) % period
    return torch.minimum(index, period - index)


def reflect_pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (b, c, h, w) on the bottom and right with reflection up to a multiple of ``multiple``.

    Inputs smaller than the padding are reflected repeatedly; a single row or column is replicated. Index arithmetic
    rather than a loop over sizes, so a traced export (ONNX) stays valid for every input size.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not (pad_h or pad_w):
        return x
    x = x.index_select(-2, reflect_index(h, h + pad_h, x.device))
    return x.index_select(-1, reflect_index(w, w + pad_w, x.device))
