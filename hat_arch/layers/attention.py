"""Attention kernels for groups of windows: the naive path's (the reference algorithm), the sdpa path's fused kernel,
and that kernel's bounded-memory backward for learnable biases."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


# Elements of attention matrix the sdpa path's backward holds at once (8 MiB in fp32): small enough to bound memory
# and to mostly stay in cache (10-15 % faster than 16 MiB on a 32 MiB L3), large enough that the per-chunk overhead
# stays small.
BACKWARD_CHUNK_ELEMENTS = 2**21


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, scale: float,
                    dropout_p: float = 0.0) -> torch.Tensor:
    """The reference algorithm: the full attention matrices, explicit matmul + softmax.

    q: (..., heads, nq, d); k, v: (..., heads, nk, d); bias broadcastable to (..., heads, nq, nk).
    """
    attn = (q * scale) @ k.transpose(-2, -1) + bias  # an fp32 bias makes fp16/bf16 scores fp32, as in the reference
    attn = attn.softmax(dim=-1)
    if dropout_p > 0:
        attn = F.dropout(attn, p=dropout_p)
    return attn.to(v.dtype) @ v


def grouped_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, biases: torch.Tensor, counts: Sequence[int],
                 scale: float) -> torch.Tensor:
    """Attention of consecutive groups of windows through the fused kernel, group g with the additive bias biases[g].

    q: (B, nq, heads, d), k, v: (B, nk, heads, d), token-major (any strides, d contiguous); biases: (G, heads, nq, nk);
    counts: windows per group, summing to B. Returns (B, nq, heads, d).
    """
    attend = lambda window, bias: F.scaled_dot_product_attention(  # the kernel writes (B, nq, heads, d) memory
        q[window].transpose(1, 2), k[window].transpose(1, 2), v[window].transpose(1, 2), attn_mask=bias.to(q.dtype),
        scale=scale).transpose(1, 2)
    if len(counts) == 1:
        return attend(slice(None), biases)
    out = q.new_empty(q.shape)
    start = 0
    for group, count in enumerate(counts):
        out[start:start + count] = attend(slice(start, start + count), biases[group:group + 1])
        start += count
    return out


class BiasedAttention(torch.autograd.Function):
    """:func:`grouped_sdpa` with learnable biases, in bounded memory for training.

    ``scaled_dot_product_attention`` runs its fused kernel only for a mask that needs no gradient, and autograd would
    otherwise keep every attention matrix. Here the forward is the fused kernel; the backward recomputes the attention
    matrices a chunk of windows at a time and returns the gradients of q, k, v and biases.
    """

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, biases: torch.Tensor, counts: Sequence[int],
                scale: float) -> torch.Tensor:
        ctx.save_for_backward(q, k, v, biases)
        ctx.counts, ctx.scale = counts, scale
        return grouped_sdpa(q.detach(), k.detach(), v.detach(), biases.detach(), counts, scale)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q, k, v, biases = ctx.saved_tensors
        scale = ctx.scale
        if torch.is_grad_enabled():  # create_graph (gradient penalties): differentiate the reference algorithm
            inputs = [t for t, needed in zip((q, k, v, biases), ctx.needs_input_grad) if needed]
            out = grouped_naive_attention(q, k, v, biases, ctx.counts, scale)
            grads = iter(torch.autograd.grad(out, inputs, grad_out, create_graph=True))
            return tuple(next(grads) if needed else None for needed in ctx.needs_input_grad[:4]) + (None, None)
        head_major = lambda t: t.transpose(1, 2).contiguous()  # (B, heads, n, d), so chunks are contiguous
        # A copy even where q is already head-major (one head): the saved q must not change.
        q_scaled = q.transpose(1, 2).clone(memory_format=torch.contiguous_format).mul_(scale)
        k, v, grad_out = head_major(k), head_major(v), head_major(grad_out)
        grad_q, grad_k, grad_v = torch.empty_like(q_scaled), torch.empty_like(k), torch.empty_like(v)
        # In the biases' dtype, fp32 under autocast: the sum over all windows overflows fp16 (the reference sums it
        # in fp32 too), more so with a gradient scaler's factor.
        grad_biases = torch.zeros_like(biases)
        chunk = min(max(1, BACKWARD_CHUNK_ELEMENTS // biases[0].numel()), max(ctx.counts))
        # Two attention-sized buffers for all chunks, every step written in place: on CPU, a fresh output per matmul
        # costs page faults and a slower matmul path, 10-25 % of this backward's time.
        probs = q_scaled.new_empty((chunk, ) + biases.shape[1:])
        grad_scores = torch.empty_like(probs)
        k_t, v_t = k.transpose(-2, -1), v.transpose(-2, -1)
        group_start = 0
        for group, count in enumerate(ctx.counts):
            for start in range(group_start, group_start + count, chunk):
                stop = min(start + chunk, group_start + count)
                w, p, grad_s = slice(start, stop), probs[:stop - start], grad_scores[:stop - start]
                torch.matmul(q_scaled[w], k_t[w], out=p).add_(biases[group])
                torch.softmax(p, dim=-1, out=p)
                torch.matmul(p.transpose(-2, -1), grad_out[w], out=grad_v[w])
                torch.matmul(grad_out[w], v_t[w], out=grad_s)
                torch.ops.aten._softmax_backward_data.out(grad_s, p, -1, p.dtype, grad_input=grad_s)
                torch.matmul(grad_s, k[w], out=grad_q[w])
                torch.matmul(grad_s.transpose(-2, -1), q_scaled[w], out=grad_k[w])
                grad_biases[group] += grad_s.sum(0, dtype=grad_biases.dtype)
            group_start += count
        return (grad_q.mul_(scale).transpose(1, 2), grad_k.transpose(1, 2), grad_v.transpose(1, 2), grad_biases,
                None, None)


def grouped_naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, biases: torch.Tensor,
                            counts: Sequence[int], scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """:func:`grouped_sdpa` through the reference algorithm (full attention matrices); shapes as there."""
    starts = [sum(counts[:g]) for g in range(len(counts))]
    return torch.cat([
        naive_attention(*(t[s:s + n].transpose(1, 2) for t in (q, k, v)), biases[g], scale, dropout_p)
        for g, (s, n) in enumerate(zip(starts, counts))
    ]).transpose(1, 2)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, biases: torch.Tensor, counts: Sequence[int],
                   scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    """Attention of groups of windows, each with its bias; shapes as in :func:`grouped_sdpa`. Under autocast the
    biases stay fp32, so their gradient, a sum over every window, is summed in fp32 as in the reference."""
    if dropout_p > 0:  # attention dropout (never in the released configurations) has only the reference algorithm
        return grouped_naive_attention(q, k, v, biases, counts, scale, dropout_p)
    if biases.requires_grad and torch.is_grad_enabled():
        return BiasedAttention.apply(q, k, v, biases, counts, scale)
    return grouped_sdpa(q, k, v, biases, counts, scale)
