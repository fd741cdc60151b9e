"""Window bookkeeping: partitions, overlapping key/value windows, the sdpa path's window order, relative position
indices and biases, and the shifted windows' masks."""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange


# The reference masks attention across shifted-window regions with -100, not -inf; keep it for exact outputs.
SHIFT_MASK_VALUE = -100.0


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """(b, h, w, c) -> (b, h/ws, w/ws, ws*ws, c)."""
    return rearrange(x, 'b (nh wh) (nw ww) c -> b nh nw (wh ww) c', wh=window_size, ww=window_size)


def window_reverse(windows: torch.Tensor, window_size: int) -> torch.Tensor:
    """(b, h/ws, w/ws, ws*ws, c) -> (b, h, w, c)."""
    return rearrange(windows, 'b nh nw (wh ww) c -> b (nh wh) (nw ww) c', wh=window_size, ww=window_size)


class OverlappingWindows(torch.autograd.Function):
    """Key/value windows for the overlapping cross-attention: (b, h, w, c) -> (nh*nw*b, ows*ows, c), windows of side
    ``ows`` every ``ws`` pixels, zero outside the image, ordered (window row, window column, batch).

    The same as unfolding a zero-padded image; the backward adds the windows back in ceil(ows/ws)^2 strided sums
    instead of autograd's generic ``unfold_backward``, several times slower on CPU.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, ws: int, ows: int) -> torch.Tensor:
        ctx.shape, ctx.ws, ctx.ows = x.shape, ws, ows
        pad = (ows - ws) // 2
        windows = F.pad(x, (0, 0, pad, pad, pad, pad)).unfold(1, ows, ws).unfold(2, ows, ws)
        return rearrange(windows, 'b nh nw c oh ow -> (nh nw b) (oh ow) c')

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (b, h, w, c), ws, ows = ctx.shape, ctx.ws, ctx.ows
        nh, nw, pad, parts = h // ws, w // ws, (ows - ws) // 2, -(-ows // ws)
        grad = grad.view(nh, nw, b, ows, ows, c)
        # Part (r, s) of every window (its rows r*ws.., columns s*ws..) lands in one ws x ws block of the padded image.
        padded = grad.new_zeros(b, (nh + parts) * ws, (nw + parts) * ws, c)
        for r in range(parts):
            for s in range(parts):
                rows, cols = min(ws, ows - r * ws), min(ws, ows - s * ws)
                blocks = padded[:, r * ws:(r + nh) * ws, s * ws:(s + nw) * ws].view(b, nh, ws, nw, ws, c)
                part = grad[:, :, :, r * ws:r * ws + rows, s * ws:s * ws + cols]
                blocks[:, :, :rows, :, :cols].add_(part.permute(2, 0, 3, 1, 4, 5))
        return padded[:, pad:pad + h, pad:pad + w], None, None


class PermuteRows(torch.autograd.Function):
    """``x.index_select(0, index)`` for a permutation ``index``: the backward gathers by ``inverse`` instead of
    scattering into zeros."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(inverse)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        inverse, = ctx.saved_tensors
        return grad.index_select(0, inverse), None, None


class WindowOrder(NamedTuple):
    """Where the tokens of (b, h, w) images go when laid out window after window, for the sdpa path.

    ``gather`` takes image-order token rows (b*h*w, c) to the windows (nW*b * ws*ws, c) of the image cyclically shifted
    by -shift, windows ordered (region group, window, batch); ``scatter`` takes them back. ``groups`` lists, per group
    of windows that share a shift-region mask, the mask's (last_row, last_col) key (``None`` unshifted) and its number
    of windows times b, so each group is one contiguous batch for the attention kernel.
    """
    index: torch.Tensor
    inverse: torch.Tensor
    groups: list[tuple[tuple[int, int] | None, int]]

    def gather(self, tokens: torch.Tensor) -> torch.Tensor:
        return PermuteRows.apply(tokens, self.index, self.inverse)

    def scatter(self, rows: torch.Tensor) -> torch.Tensor:
        return PermuteRows.apply(rows, self.inverse, self.index)


def window_order(batch: int, h: int, w: int, window_size: int, shift: int, device: torch.device) -> WindowOrder:
    """The :class:`WindowOrder` of (batch, h, w) tokens; h and w are multiples of the window size."""
    ws, nh, nw = window_size, h // window_size, w // window_size
    arange = partial(torch.arange, device=device)
    # (mask key, first, end) window rows and columns: with a shift, interior windows need no mask; the last row and
    # column of windows straddle the wrap-around.
    rows = [(0, 0, nh - 1), (1, nh - 1, nh)] if shift else [(0, 0, nh)]
    cols = [(0, 0, nw - 1), (1, nw - 1, nw)] if shift else [(0, 0, nw)]
    parts, groups = [], []
    for last_row, row0, row1 in rows:
        for last_col, col0, col1 in cols:
            count = (row1 - row0) * (col1 - col0)
            if not count:
                continue
            # Rolling by -shift puts pixel (y + shift) % h at y.
            pix_rows = (arange(row0, row1)[:, None] * ws + arange(ws) + shift) % h  # window row, pixel row
            pix_cols = (arange(col0, col1)[:, None] * ws + arange(ws) + shift) % w
            tokens = (pix_rows[:, None, :, None] * w + pix_cols[None, :, None, :]).reshape(count, 1, ws * ws)
            parts.append((tokens + arange(batch)[:, None] * (h * w)).flatten())
            groups.append(((last_row, last_col) if shift else None, count * batch))
    index = torch.cat(parts)
    return WindowOrder(index, torch.argsort(index), groups)


def relative_position_index_sa(window_size: int) -> torch.Tensor:
    """Index into the (2ws-1)^2 bias table for every (query, key) pair of a window: (ws*ws, ws*ws)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing='ij'))
    coords = coords.flatten(1)  # 2, ws*ws
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


def relative_position_index_oca(window_size: int, overlap_window_size: int) -> torch.Tensor:
    """Index into the (ws+ows-1)^2 bias table for (window query, overlapping-window key): (ws*ws, ows*ows)."""
    grid = lambda n: torch.stack(torch.meshgrid(torch.arange(n), torch.arange(n), indexing='ij')).flatten(1)
    relative = (grid(overlap_window_size)[:, None, :] - grid(window_size)[:, :, None]).permute(1, 2, 0)
    relative = relative + (window_size - overlap_window_size + 1)
    return relative[..., 0] * (window_size + overlap_window_size - 1) + relative[..., 1]


def relative_position_bias(table: torch.Tensor, rpi: torch.Tensor) -> torch.Tensor:
    """The bias table (entries, heads) read at the index rpi (nq, nk): a contiguous (heads, nq, nk) additive mask.

    Negative indices count from the end of the table (the reference's overlapping-window index has some).
    ``index_select`` on the transposed table: 2-3x faster than advanced indexing forward and backward on CPU.
    """
    entries, heads = table.shape
    return table.t().contiguous().index_select(1, rpi.flatten().remainder(entries)).view(heads, *rpi.shape)


def shift_region_masks(window_size: int, shift_size: int) -> torch.Tensor:
    """Additive masks for the windows that straddle the cyclic shift's wrap-around: (2, 2, ws*ws, ws*ws).

    After rolling by -shift, only the last window row and column hold pixels from two sides of the image. Interior
    windows need no mask; ``masks[r, c]`` is the mask of a window in the last row (``r=1``) and/or column (``c=1``).
    Tokens attend only to tokens of their own region, as in the reference (which builds one mask per window).
    """
    local = torch.arange(window_size)
    side = (local >= window_size - shift_size).long()  # which side of the wrap-around each row/column is on
    rows = side.repeat_interleave(window_size)  # per token, row side
    cols = side.repeat(window_size)  # per token, column side
    masks = torch.zeros(2, 2, window_size * window_size, window_size * window_size)
    for last_row in (0, 1):
        for last_col in (0, 1):
            region = rows * 2 * last_row + cols * last_col
            masks[last_row, last_col] = (region[:, None] != region[None, :]).float() * SHIFT_MASK_VALUE
    return masks


def shift_window_mask(region_masks: torch.Tensor, nh: int, nw: int) -> torch.Tensor:
    """The reference's mask of every shifted window, (nh*nw, ws*ws, ws*ws), from the region masks."""
    last_row = (torch.arange(nh, device=region_masks.device) == nh - 1).long()
    last_col = (torch.arange(nw, device=region_masks.device) == nw - 1).long()
    return region_masks[last_row[:, None], last_col[None, :]].flatten(0, 1)
