"""Window bookkeeping: the fused path's window order and the shifted windows' masks, against the reference's."""
from __future__ import annotations

import pytest
import torch

from hat_arch.layers.windows import shift_region_masks, window_order, window_partition


@pytest.mark.parametrize('shift', [0, 4])
def test_window_order_gathers_the_rolled_windows_grouped_by_mask(shift):
    b, h, w, ws, c = 2, 24, 32, 8, 3
    nh, nw = h // ws, w // ws
    image = torch.rand(b, h, w, c)
    order = window_order(b, h, w, ws, shift, image.device)
    windows = order.gather(image.reshape(-1, c)).view(-1, ws * ws, c)

    rolled = window_partition(torch.roll(image, shifts=(-shift, -shift), dims=(1, 2)), ws)  # b, nh, nw, n, c
    if shift:  # interior windows, last column, last row, corner: each group one mask of the reference's
        parts = [(rows, cols) for rows in (range(nh - 1), [nh - 1]) for cols in (range(nw - 1), [nw - 1])]
        regions = [(0, 0), (0, 1), (1, 0), (1, 1)]
    else:
        parts, regions = [(range(nh), range(nw))], [None]
    expected = [rolled[i, r, col] for rows, cols in parts for r in rows for col in cols for i in range(b)]
    assert torch.equal(windows, torch.stack(expected))
    assert order.groups == [(region, len(rows) * len(cols) * b) for region, (rows, cols) in zip(regions, parts)]
    restored = order.scatter(windows.reshape(-1, c)).view(b, h, w, c)
    assert torch.equal(restored, image)


def test_shift_masks_match_the_reference_full_mask():
    """The region masks used per window equal the reference's per-window mask (built with slices)."""
    ws, shift, h, w = 8, 4, 24, 32
    img_mask = torch.zeros(1, h, w, 1)
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    windows = window_partition(img_mask, ws)[0, ..., 0]  # nh, nw, n
    full = windows[..., None, :] - windows[..., :, None]
    full = torch.where(full != 0, -100.0, 0.0)
    masks = shift_region_masks(ws, shift)
    for i in range(h // ws):
        for j in range(w // ws):
            assert torch.equal(full[i, j], masks[int(i == h // ws - 1), int(j == w // ws - 1)])
