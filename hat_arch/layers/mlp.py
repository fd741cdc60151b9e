"""The transformer blocks' MLP, with the GELU recomputed in the backward to hold one hidden activation instead of two.

It is written here rather than taken from ``timm.layers.Mlp`` (same parameters, same outputs): importing timm runs its
package init, which loads torchvision's feature extraction and ``torch._dynamo`` (about 2 s), and ``hat-sr upscale``
would pay that at every start for two linear layers."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GeluLinear(torch.autograd.Function):
    """``F.linear(F.gelu(h), weight, bias)`` that keeps only h for the backward and recomputes the GELU there: one
    hidden activation held per MLP in training instead of two. h: (tokens, hidden) -> (tokens, out)."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(h, weight)
        ctx.has_bias = bias is not None
        return F.linear(F.gelu(h), weight, bias)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        h, weight = ctx.saved_tensors
        grad_h = torch.ops.aten.gelu_backward(grad_y.mm(weight.to(grad_y.dtype)), h)
        grad_weight = grad_y.t().mm(F.gelu(h).to(grad_y.dtype)).to(weight.dtype)
        grad_bias = grad_y.sum(0).to(weight.dtype) if ctx.has_bias else None
        return grad_h, grad_weight, grad_bias


class Mlp(nn.Module):
    """fc1, activation, dropout, fc2, dropout: the reference HAT's ``Mlp`` (its name and state-dict keys); called
    with ``recompute_gelu=True``, training keeps only fc1's output (see :class:`GeluLinear`) where the MLP is GELU
    without dropout. Tokens (..., in) -> (..., in)."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: type[nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)
        self.can_recompute_gelu = act_layer is nn.GELU and drop == 0

    def forward(self, x: torch.Tensor, recompute_gelu: bool = False) -> torch.Tensor:
        if recompute_gelu and self.can_recompute_gelu and torch.is_grad_enabled():
            h = self.fc1(x)
            return GeluLinear.apply(h.reshape(-1, h.shape[-1]), self.fc2.weight, self.fc2.bias).view(*h.shape[:-1], -1)
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
