"""The memory format each conv input runs fastest in."""
from __future__ import annotations

import torch


def conv_input(x: torch.Tensor, naive: bool) -> torch.Tensor:
    """x (b, c, h, w) in the memory format its convs run fastest in: channels_last, except on CPU while gradients
    are recorded (training, LAM). The naive path (``attn_impl='naive'``) keeps the reference's layouts: x as it is.

    oneDNN's channels_last convolution is faster forward but its backward is up to 2x slower than NCHW's on CPU (HAT-S
    step: the 64->256 conv at 128x128, 400 vs 213 ms; 144->144 at 64x64, 105 vs 67 ms), so a backward uses NCHW there.
    """
    if naive:
        return x
    if torch.is_grad_enabled() and x.device.type == 'cpu':
        return x.contiguous()
    return x.contiguous(memory_format=torch.channels_last)
