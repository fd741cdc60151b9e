"""The fused attention path (``attn_impl='sdpa'``) against the reference algorithm (``'naive'``): same outputs and
gradients, the fused kernel really used, and no tensor as large as all attention matrices together."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from hat_arch import HAT
from hat_arch.layers import attention, context
from hat_arch.layers.head_padding import has_hooks, head_padded
from tests.conftest import DEVICE, TINY_HAT

CONFIGS = {
    'shifted': dict(),
    'unshifted': dict(img_size=8),  # a training size of one window: no shifted windows, as in the reference
    'window12': dict(window_size=12),
    'overlap0.25': dict(overlap_ratio=0.25),
    'overlap1.5': dict(overlap_ratio=1.5),  # key/value windows more than twice the window
    'x3': dict(upscale=3),
    'one_window_row': dict(depths=[2], num_heads=[2]),
    'padded_heads': dict(embed_dim=60),  # heads of 30 channels, padded to 32 in the fused path as in HAT
    'padded_heads_no_qkv_bias': dict(embed_dim=60, qkv_bias=False),
}


def twins(**overrides) -> tuple[HAT, HAT]:
    """The fused and the naive model with the same weights."""
    config = {**TINY_HAT, 'drop_path_rate': 0.0, **overrides}
    fused = HAT(**config)
    naive = HAT(**config, attn_impl='naive')
    naive.load_state_dict(fused.state_dict())
    return fused, naive


@pytest.mark.parametrize('name', CONFIGS)
def test_fused_matches_naive_outputs_and_gradients(name):
    fused, naive = (model.to(DEVICE) for model in twins(**CONFIGS[name]))
    size = (8, 40) if name == 'one_window_row' else (19, 27)  # non-square, padded
    x = torch.rand(2, 3, *size, device=DEVICE)
    outputs, grads = [], []
    for model in (fused, naive):
        image = x.clone().requires_grad_()
        out = model.train()(image)
        (out * torch.linspace(-1, 1, out.numel(), device=DEVICE).view_as(out)).sum().backward()
        outputs.append(out.detach())
        grads.append([image.grad] + [p.grad for p in model.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1], atol=1e-4, rtol=0)
    for g_fused, g_naive in zip(*grads):
        torch.testing.assert_close(g_fused, g_naive, atol=1e-4 * max(1.0, g_naive.abs().max().item()), rtol=0)


def test_fused_matches_naive_in_eval_on_a_batch():
    fused, naive = (model.to(DEVICE) for model in twins(window_size=12))
    x = torch.rand(3, 3, 30, 50, device=DEVICE)
    with torch.no_grad():
        torch.testing.assert_close(fused.eval()(x), naive.eval()(x), atol=1e-4, rtol=0)


def test_wrapped_or_hooked_projections_run_their_own_forward_in_the_fused_path():
    class Wrapped(torch.nn.Linear):  # as LoRA or quantization wrappers: a forward of its own
        def forward(self, x):
            return super().forward(x) * 0.5

    assert head_padded(Wrapped(180, 540), torch.nn.Linear(180, 180), head_dim=30).width == 30
    fused, naive = twins(embed_dim=60)  # heads of 30 channels: padded where the layers are plain
    calls = []
    for model in (fused, naive):
        for name, module in model.named_modules():
            if name.endswith(('.qkv', '.proj')):
                module.register_forward_hook(lambda module, args, out: calls.append(1) or out * 0.9)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused.eval()(x), naive.eval()(x), atol=1e-4, rtol=0)
    assert len(calls) == 2 * 2 * 3 * 2  # 2 models x 2 groups x (2 HABs + 1 OCAB) x (qkv, proj)


def test_backward_hooks_on_padded_projections_still_fire():
    assert has_hooks(torch.nn.Linear(2, 2)) is False
    fused, _ = twins(embed_dim=60)  # heads of 30 channels
    calls = []
    fused.layers[0].residual_group.blocks[0].attn.qkv.register_full_backward_hook(lambda *args: calls.append(1))
    fused.train()(torch.rand(1, 3, 16, 16)).sum().backward()
    assert calls == [1]
    with torch.nn.modules.module.register_module_forward_hook(lambda module, args, out: None):
        assert has_hooks(torch.nn.Linear(2, 2))  # a hook for all modules counts too


@pytest.mark.parametrize('impl', ['sdpa', 'naive'])
def test_hooks_on_blocks_see_their_own_outputs(impl):
    # The fused path sums residuals in place: never into what a submodule returned, which hooks keep or wrap.
    fused, naive = twins()
    model = (fused if impl == 'sdpa' else naive).train()
    block = model.layers[0].residual_group.blocks[1]
    seen = {}
    for name in ('attn', 'mlp'):
        getattr(block, name).register_forward_hook(
            lambda m, args, out, name=name: seen.update({name: (out, out.clone())}))
    block.attn.register_full_backward_hook(lambda *args: None)
    model.layers[0].residual_group.overlap_attn.mlp.register_full_backward_hook(lambda *args: None)
    model(torch.rand(2, 3, 16, 16)).sum().backward()  # in-place changes to a hooked output would raise here
    for out, copy_at_return in seen.values():
        torch.testing.assert_close(out, copy_at_return, rtol=0, atol=0)


def test_second_order_gradients_match_the_reference():
    # A gradient penalty differentiates the input gradient again (create_graph=True).
    fused, naive = twins(embed_dim=60)
    x = torch.rand(1, 3, 16, 16)
    grads = []
    for model in (fused, naive):
        image = x.clone().requires_grad_()
        out = model.train()(image)
        input_grad, = torch.autograd.grad(out.square().sum(), image, create_graph=True)
        input_grad.square().sum().backward()
        grads.append([p.grad for p in model.parameters()])
    for g_fused, g_naive in zip(*grads):
        torch.testing.assert_close(g_fused, g_naive, atol=1e-4 * max(1.0, g_naive.abs().max().item()), rtol=0)


def test_one_head_backward_can_run_twice():
    # With one head, q is already head-major: the backward must copy it before scaling, not scale the saved q.
    fused, naive = twins(depths=[2], num_heads=[1], embed_dim=16)
    x = torch.rand(1, 3, 16, 16)
    for model in (fused, naive):
        out = model.train()(x).sum()
        out.backward(retain_graph=True)
        first = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        out.backward()
        for g, g_first in zip((p.grad for p in model.parameters()), first):
            torch.testing.assert_close(g, g_first)


class LargestTensor(TorchDispatchMode):
    """Records the ops run and the largest number of elements of any tensor they return."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.add(func.overloadpacket.__name__)
        for t in out if isinstance(out, (tuple, list)) else (out, ):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def attention_matrix_elements(model: HAT, b: int, h: int, w: int) -> int:
    """Elements of the overlapping cross-attention matrices of all windows (the largest the naive path makes)."""
    block = model.layers[0].residual_group.overlap_attn
    windows = b * (h // block.window_size) * (w // block.window_size)
    return windows * block.num_heads * block.window_size**2 * block.overlap_win_size**2


# Many heads of few channels: attention matrices dwarf every other tensor of the blocks.
MANY_HEADS = dict(num_heads=[12, 12])


def test_fused_inference_uses_the_fused_kernel_and_no_full_size_attention():
    fused, naive = twins(**MANY_HEADS)
    features = torch.rand(2, TINY_HAT['embed_dim'], 48, 64)  # 2 x 6 x 8 windows of 8 x 8
    limit = attention_matrix_elements(fused, 2, 48, 64)
    modes = {}
    for name, model in (('fused', fused), ('naive', naive)):
        with torch.no_grad(), LargestTensor() as modes[name]:
            model.eval().forward_features(features)
    assert '_scaled_dot_product_flash_attention_for_cpu' in modes['fused'].ops
    assert not {'bmm', '_softmax'} & modes['fused'].ops
    assert modes['naive'].largest >= limit  # the measure sees the attention matrices where they exist
    assert modes['fused'].largest < limit / 8


def test_fused_training_holds_attention_matrices_in_bounded_chunks():
    fused, _ = twins(**MANY_HEADS)
    features = torch.rand(2, TINY_HAT['embed_dim'], 48, 64)
    limit = attention_matrix_elements(fused, 2, 48, 64)
    with mock.patch.object(attention, 'BACKWARD_CHUNK_ELEMENTS', limit // 8), LargestTensor() as mode:
        fused.train().forward_features(features).mean().backward()
    assert '_scaled_dot_product_flash_attention_for_cpu' in mode.ops
    assert mode.largest <= limit // 8


def test_window_layouts_are_made_once_per_forward():
    fused, _ = twins(depths=[2, 2, 2], num_heads=[2, 2, 2])
    with mock.patch.object(context, 'window_order', wraps=context.window_order) as made, torch.no_grad():
        fused.eval()(torch.rand(1, 3, 16, 24))
    assert made.call_count == 2  # unshifted and shifted, shared by all blocks


def test_fused_training_under_bf16_autocast():
    """The custom backward passes (attention, MLP) follow autocast's dtypes; gradients stay close to fp32."""
    fused, _ = twins()
    x = torch.rand(2, 3, 19, 27)
    grads = []
    for autocast in (False, True):
        fused.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            out = fused.train()(x)
        out.float().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in fused.parameters()]))
    assert torch.isfinite(grads[1]).all()
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99


def test_fused_body_convs_run_channels_last_in_inference_and_nchw_in_training_on_cpu():
    """oneDNN's channels_last convolution is faster forward and slower backward on CPU: the body convs follow that."""
    fused, _ = twins()
    layouts = []
    record = lambda module, args: layouts.append(
        'nchw' if args[0].is_contiguous() else 'channels_last' if args[0].is_contiguous(
            memory_format=torch.channels_last) else 'strided')
    for conv in (fused.conv_first, fused.layers[0].conv, fused.conv_after_body):
        conv.register_forward_pre_hook(record)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        fused.eval()(x)
    assert layouts == ['channels_last'] * 3
    layouts.clear()
    fused.train()(x).mean().backward()
    assert layouts == ['nchw'] * 3


def test_set_attn_impl_switches_a_built_model_to_the_reference_path():
    fused, naive = twins()
    x = torch.rand(1, 3, 16, 24)
    with LargestTensor() as mode, torch.no_grad():
        fused.eval()(x)
    assert '_scaled_dot_product_flash_attention_for_cpu' in mode.ops
    fused.set_attn_impl('naive')
    with LargestTensor() as mode, torch.no_grad():
        out = fused(x)
    assert '_scaled_dot_product_flash_attention_for_cpu' not in mode.ops and '_softmax' in mode.ops
    with torch.no_grad():
        assert torch.equal(out, naive.eval()(x))  # the reference's arithmetic, bit for bit
    with pytest.raises(ValueError, match="attn_impl 'flash' is not one of"):
        fused.set_attn_impl('flash')
