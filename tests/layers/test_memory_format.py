"""layers/memory_format.py: conv inputs in channels_last, except on the reference path and for a CPU backward."""
from __future__ import annotations

import torch

from hat_arch.layers.memory_format import conv_input


def test_the_fused_path_runs_convs_channels_last_without_gradients():
    x = torch.rand(1, 4, 5, 6)
    with torch.no_grad():
        y = conv_input(x, naive=False)
    assert y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x)


def test_a_cpu_backward_runs_in_nchw():
    x = torch.rand(1, 4, 5, 6).contiguous(memory_format=torch.channels_last)
    with torch.enable_grad():
        y = conv_input(x, naive=False)
    assert y.is_contiguous() and not y.is_contiguous(memory_format=torch.channels_last) and torch.equal(y, x)


def test_the_reference_path_keeps_the_layout_it_is_given():
    x = torch.rand(4, 1, 6, 5).transpose(0, 1)  # neither NCHW- nor NHWC-contiguous
    with torch.no_grad():
        assert conv_input(x, naive=True) is x
