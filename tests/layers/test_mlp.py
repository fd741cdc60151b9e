"""The blocks' MLP: timm's Mlp with the same weights, and recomputing the GELU in the backward changes nothing."""
from __future__ import annotations

import torch
from timm.layers import Mlp as TimmMlp

from hat_arch.layers.mlp import Mlp


def test_recomputed_gelu_matches_the_plain_mlp_outputs_and_gradients():
    lean, plain = Mlp(6, 12), Mlp(6, 12)
    plain.load_state_dict(lean.state_dict())
    x = torch.randn(2, 5, 6, dtype=torch.float64)
    grads = []
    for mlp, recompute in ((lean.double(), True), (plain.double(), False)):
        x_ = x.clone().requires_grad_()
        out = mlp(x_, recompute_gelu=recompute)
        out.backward(torch.ones_like(out))
        grads.append((out, x_.grad, *(p.grad for p in mlp.parameters())))
    for lean_t, plain_t in zip(*grads):
        torch.testing.assert_close(lean_t, plain_t)


def test_recompute_only_for_gelu_without_dropout():
    assert Mlp(6, 12).can_recompute_gelu
    assert not Mlp(6, 12, act_layer=torch.nn.ReLU).can_recompute_gelu
    assert not Mlp(6, 12, drop=0.1).can_recompute_gelu


def test_same_keys_and_outputs_as_timms_mlp():
    lean, timm_mlp = Mlp(6, 12, drop=0.1), TimmMlp(6, 12, drop=0.1)
    assert lean.state_dict().keys() == timm_mlp.state_dict().keys() == {'fc1.weight', 'fc1.bias', 'fc2.weight',
                                                                       'fc2.bias'}
    timm_mlp.load_state_dict(lean.state_dict())
    x = torch.randn(3, 6)
    torch.testing.assert_close(lean.eval()(x), timm_mlp.eval()(x))
    torch.manual_seed(0)
    dropped = lean.train()(x)
    torch.manual_seed(0)
    torch.testing.assert_close(dropped, timm_mlp.train()(x))  # dropout after the activation and after fc2, as timm
