"""Head padding: zero-padded heads project exactly as the unpadded layers, only where it is cheap."""
from __future__ import annotations

import torch

from hat_arch.layers.head_padding import head_padded


def test_heads_of_30_channels_are_padded_to_32_with_zeros_and_project_the_same():
    qkv, proj = torch.nn.Linear(180, 540), torch.nn.Linear(180, 180)
    padded = head_padded(qkv, proj, head_dim=30)
    assert padded.width == 32
    x = torch.randn(5, 180)
    heads = padded.qkv(x).view(5, 3, 6, 32)
    assert torch.equal(heads[..., 30:], torch.zeros(5, 3, 6, 2))
    torch.testing.assert_close(heads[..., :30].reshape(5, 540), qkv(x))
    out = torch.randn(5, 6, 30)
    torch.testing.assert_close(padded.proj(torch.nn.functional.pad(out, (0, 2)).reshape(5, 192)),
                               proj(out.reshape(5, 180)))
    # HAT-S's heads of 24 need nothing; narrow heads are not padded (a 4x larger qkv would cost more than it gains)
    assert head_padded(torch.nn.Linear(144, 432), torch.nn.Linear(144, 144), head_dim=24).width == 24
    assert head_padded(torch.nn.Linear(24, 72), torch.nn.Linear(24, 24), head_dim=2).width == 2
