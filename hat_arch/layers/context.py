"""What every block of one forward shares: the computation path and what the window attention needs, made once."""
from __future__ import annotations

import sys
from typing import NamedTuple

import torch

from hat_arch.layers.windows import WindowOrder, shift_window_mask, window_order

ATTN_IMPLS = ('sdpa', 'naive')


def check_attn_impl(attn_impl: str) -> None:
    """Raise ValueError unless ``attn_impl`` names a path: 'sdpa' (fused kernels) or 'naive' (the reference's)."""
    if attn_impl not in ATTN_IMPLS:
        raise ValueError(f'attn_impl {attn_impl!r} is not one of {ATTN_IMPLS}')


def forward_attn_impl(attn_impl: str) -> str:
    """The path a forward takes: 'naive' while ``torch.onnx.export`` traces it (the exporter cannot trace the sdpa
    path's custom autograd functions), else ``attn_impl``. The one place where exporting picks the path."""
    onnx = sys.modules.get('torch.onnx')  # not loaded: no export runs (and loading it costs start-up time)
    return 'naive' if onnx is not None and onnx.is_in_onnx_export() else attn_impl


class BlockContext(NamedTuple):
    """Handed to every block of one forward.

    ``naive`` (``attn_impl='naive'``) switches the whole computation to the reference's: explicit attention
    matrices, its memory layouts, out-of-place sums and no GELU recompute; otherwise the sdpa path runs. The naive
    path reads ``shift_mask``, the sdpa path ``windows`` and ``shifted_windows``; the other fields are ``None``.
    """
    naive: bool
    rpi_sa: torch.Tensor  # relative position index of the window self-attention
    rpi_oca: torch.Tensor  # ... and of the overlapping cross-attention
    region_masks: torch.Tensor  # the shifted windows' masks by region, see shift_region_masks
    shift_mask: torch.Tensor | None = None  # naive path: every shifted window's mask
    windows: WindowOrder | None = None  # sdpa path: the layouts of unshifted and shifted windows
    shifted_windows: WindowOrder | None = None


def block_context(attn_impl: str, shape: torch.Size, window_size: int, shift_size: int, rpi_sa: torch.Tensor,
                  rpi_oca: torch.Tensor, region_masks: torch.Tensor) -> BlockContext:
    """The context of a forward on features of ``shape`` (b, c, h, w), h and w multiples of the window size."""
    b, _, h, w = shape
    if attn_impl == 'naive':
        mask = shift_window_mask(region_masks, h // window_size, w // window_size)
        return BlockContext(True, rpi_sa, rpi_oca, region_masks, shift_mask=mask)
    device = region_masks.device
    return BlockContext(False, rpi_sa, rpi_oca, region_masks, windows=window_order(b, h, w, window_size, 0, device),
                        shifted_windows=window_order(b, h, w, window_size, shift_size, device))
