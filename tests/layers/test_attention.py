"""The attention kernels: the chunked backward's gradients and the fp32 bias gradient under fp16."""
from __future__ import annotations

from unittest import mock

import pytest
import torch

from hat_arch.layers import attention


@pytest.mark.parametrize('counts', [[4], [3, 1]])
def test_biased_attention_gradients_in_chunks(counts):
    """The chunked backward gives the gradients of q, k, v and of each group's bias."""
    torch.manual_seed(0)
    t = lambda *shape: torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    q, k, v, biases = t(4, 4, 2, 3), t(4, 5, 2, 3), t(4, 5, 2, 3), t(len(counts), 2, 4, 5)
    with mock.patch.object(attention, 'BACKWARD_CHUNK_ELEMENTS', 2 * 4 * 5 * 2):  # chunks of 2 windows
        assert torch.autograd.gradcheck(lambda *x: attention.BiasedAttention.apply(*x, counts, 0.5), (q, k, v, biases))


@pytest.mark.parametrize('attention', [attention.sdpa_attention, attention.grouped_naive_attention])
def test_bias_gradient_is_summed_in_fp32_under_fp16(attention):
    # The bias gradient sums every window's. With fp16 q, k, v (autocast) and an fp32 bias, as in the reference, it
    # stays fp32: 512 alike windows give about 1e5 here, past fp16's 65504 (a gradient scaler's factor gets there).
    torch.manual_seed(0)
    windows, n, heads, d = 512, 16, 1, 8
    alike = lambda *shape: torch.randn(1, *shape).expand(windows, *shape)
    q, k, v, grad_out = alike(n, heads, d), alike(n, heads, d), alike(n, heads, d), 150 * alike(n, heads, d)
    biases = torch.randn(1, heads, n, n)
    grads = {}
    for dtype in (torch.float64, torch.float16):
        q_, k_, v_ = (t.to(dtype).requires_grad_() for t in (q, k, v))
        bias = biases.to(torch.float64 if dtype == torch.float64 else torch.float32).requires_grad_()
        attention(q_, k_, v_, bias, [windows], d ** -0.5).backward(grad_out.to(dtype))
        grads[dtype] = bias.grad
    assert grads[torch.float16].dtype == torch.float32 and grads[torch.float64].abs().max() > 65504
    torch.testing.assert_close(grads[torch.float16].double(), grads[torch.float64], rtol=0.01,
                               atol=1e-3 * grads[torch.float64].abs().max().item())
