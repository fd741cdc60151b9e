"""The HAT network: exact to the reference, every layout and option, and clear errors."""
from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hat_arch import HAT
from hat_arch.archs import hat_arch as arch
from hat_arch.archs.config import HATConfig, SettingError
from hat_arch.layers.context import ATTN_IMPLS
from tests.conftest import DEVICE, GOLDEN_CASES, TINY_HAT, load_golden


def golden_model(name: str, **overrides) -> tuple[HAT, dict]:
    case = load_golden(name)
    model = HAT(**{**case['config'], **overrides}).eval()
    model.load_state_dict(case['params'], strict=True)
    return model, case


@pytest.mark.parametrize('impl', ATTN_IMPLS)
@pytest.mark.parametrize('name', GOLDEN_CASES)
def test_golden_outputs(name, impl):
    model, case = golden_model(name, attn_impl=impl)
    model.to(DEVICE)
    with torch.no_grad():
        out = model(case['input'].to(DEVICE)).cpu()
        out_odd = model(case['input_odd'].to(DEVICE)).cpu()
    assert out.shape == case['output'].shape
    torch.testing.assert_close(out, case['output'], atol=1e-5, rtol=0)
    assert out_odd.shape == case['output_odd_reflect_pad'].shape
    torch.testing.assert_close(out_odd, case['output_odd_reflect_pad'], atol=1e-5, rtol=0)


def test_golden_batch_elements_are_independent():
    model, case = golden_model('tiny_x4')
    with torch.no_grad():
        single = model(case['input'][1:])
    torch.testing.assert_close(single, case['output'][1:], atol=1e-5, rtol=0)


def test_relative_position_buffers_match_the_checkpoint():
    model, case = golden_model('tiny_x4')
    assert torch.equal(model.relative_position_index_SA, case['params']['relative_position_index_SA'])
    assert torch.equal(model.relative_position_index_OCA, case['params']['relative_position_index_OCA'])


@pytest.mark.parametrize('size', [(1, 1), (3, 5), (7, 8), (8, 8), (13, 19), (30, 17)])
def test_any_input_size(size):
    model = HAT(**TINY_HAT).eval()
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3, size[0] * 4, size[1] * 4)
    assert torch.isfinite(out).all()


def test_padding_is_reflect_bottom_right():
    model, case = golden_model('tiny_x4')
    x = case['input_odd']
    padded = torch.nn.functional.pad(x, (0, 24 - 19, 0, 16 - 13), mode='reflect')
    with torch.no_grad():
        assert torch.allclose(model(x), model(padded)[..., :52, :76], atol=1e-6)


def tiny(**overrides) -> HAT:
    return HAT(**{**TINY_HAT, **overrides}).eval()


@pytest.mark.parametrize('upsampler, scale', [('pixelshuffle', 2), ('pixelshuffle', 3), ('pixelshuffle', 8),
                                              ('pixelshuffledirect', 2), ('pixelshuffledirect', 3),
                                              ('nearest+conv', 4), ('', 1)])
def test_upsamplers(upsampler, scale):
    model = tiny(upsampler=upsampler, upscale=scale)
    x = torch.rand(1, 3, 11, 16)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (1, 3, 11 * scale, 16 * scale)


def reconstruction_input(model: HAT, x: torch.Tensor) -> torch.Tensor:
    """The features the upsampler starts from: shallow features + the body's output after conv_after_body."""
    seen = {}
    hooks = [model.conv_first.register_forward_hook(lambda m, a, out: seen.__setitem__('shallow', out)),
             model.conv_after_body.register_forward_hook(lambda m, a, out: seen.__setitem__('deep', out))]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen['shallow'] + seen['deep']


@pytest.mark.parametrize('upsampler', ['nearest+conv', 'pixelshuffledirect'])
def test_the_other_upsamplers_compute_the_reference_tail(upsampler):
    # The reference's reconstruction (the released models all use 'pixelshuffle', which the golden files cover).
    model = tiny(upsampler=upsampler, upscale=4, img_range=255.0)
    x = torch.rand(1, 3, 16, 16)
    features = reconstruction_input(model, x)
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    with torch.no_grad():
        if upsampler == 'nearest+conv':
            t = model.conv_before_upsample(features)
            t = lrelu(model.conv_up1(F.interpolate(t, scale_factor=2, mode='nearest')))
            t = lrelu(model.conv_up2(F.interpolate(t, scale_factor=2, mode='nearest')))
            expected = model.conv_last(lrelu(model.conv_hr(t)))
        else:
            expected = F.pixel_shuffle(model.upsample[0](features), 4)
        torch.testing.assert_close(model(x), expected / 255.0 + model.mean, atol=1e-6, rtol=1e-5)


def test_scale1_restoration_is_a_residual_on_the_input():
    model = tiny(upsampler='', upscale=1)
    nn.init.zeros_(model.conv_last.weight)
    nn.init.zeros_(model.conv_last.bias)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)
        nn.init.normal_(model.conv_last.weight)
        assert not torch.allclose(model(x), x)


def test_feature_block_inside_another_network():
    """A 64-channel feature map in, the same shape out, and the block really transforms it (not the identity)."""
    block = HAT(in_chans=64, embed_dim=32, depths=[1], num_heads=[2], window_size=8, squeeze_factor=8, upscale=1,
                upsampler='')
    features = torch.rand(2, 64, 20, 20, requires_grad=True)
    out = block(features)
    assert out.shape == features.shape
    assert not torch.allclose(out, features)
    out.mean().backward()
    assert block.conv_first.weight.grad is not None and block.conv_first.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('resi', ['1conv', '3conv', 'identity'])
def test_residual_connections(resi):
    model = tiny(resi_connection=resi)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    if resi == '3conv':
        assert model.layers[0].conv[0].out_channels == 24 // 4


def test_unusual_configurations_build_and_run():
    for config in [dict(window_size=12), dict(overlap_ratio=0.25), dict(window_size=6, overlap_ratio=1.0)]:
        model = tiny(**config)
        with torch.no_grad():
            assert model(torch.rand(2, 3, 13, 29)).shape == (2, 3, 52, 116)


def test_mask_is_not_rebuilt_per_forward():
    model = tiny()
    with mock.patch.object(arch, 'shift_region_masks', side_effect=AssertionError('rebuilt')), torch.no_grad():
        model(torch.rand(1, 3, 16, 16))
        model(torch.rand(1, 3, 24, 40))


def test_forward_mutates_no_module_state():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = {k: (v.dtype, v.clone()) for k, v in model.named_buffers()}
    attrs = dict(vars(model))
    with torch.no_grad():
        model(torch.rand(1, 3, 16, 16).double().float())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(buffers[k][0] == v.dtype and torch.equal(buffers[k][1], v) for k, v in model.named_buffers())
    assert vars(model).keys() == attrs.keys()


def test_use_checkpoint_recomputes_blocks_in_backward():
    calls = {'plain': 0, 'ckpt': 0}

    def count(key):
        def hook(module, args):  # a pre-hook: recomputation may stop early, before forward returns
            calls[key] += 1
        return hook

    x = torch.rand(1, 3, 16, 16)
    for key, flag in (('plain', False), ('ckpt', True)):
        torch.manual_seed(0)
        model = tiny(use_checkpoint=flag).train()
        model.layers[0].residual_group.blocks[0].register_forward_pre_hook(count(key))
        out = model(x)
        out.mean().backward()
        grads = [p.grad.clone() for p in model.parameters()]
        if key == 'plain':
            reference_grads = grads
    assert calls == {'plain': 1, 'ckpt': 2}  # forward once; checkpointing runs it again in backward
    for g, r in zip(grads, reference_grads):
        torch.testing.assert_close(g, r, atol=1e-6, rtol=1e-4)


def test_the_default_arguments_build_a_working_network():
    model = HAT(embed_dim=24, depths=[1], num_heads=[2], squeeze_factor=8).eval()  # smaller, for speed
    with torch.no_grad():
        assert model(torch.rand(1, 3, 20, 20)).shape == (1, 3, 40, 40)
    assert (model.window_size, model.upscale, model.upsampler) == (16, 2, 'pixelshuffle')


def test_a_training_patch_no_larger_than_a_window_has_no_shifted_windows():
    # As in the reference: with img_size <= window_size every block attends in unshifted windows.
    shifts = lambda model: [block.shift_size for layer in model.layers for block in layer.residual_group.blocks]
    assert shifts(tiny(img_size=8)) == [0, 0, 0, 0]
    assert shifts(tiny(img_size=64)) == [0, 4, 0, 4]


def test_use_checkpoint_is_off_in_eval():
    model = tiny(use_checkpoint=True).eval()
    with mock.patch.object(arch, 'checkpoint', side_effect=AssertionError('checkpointed in eval')):
        model(torch.rand(1, 3, 8, 8))


class PassThrough(nn.Module):
    def forward(self, x, x_size, params):
        return x


def amplified_tiny() -> tuple[HAT, torch.Tensor, torch.Tensor]:
    """The golden tiny HAT x4 with its attention and MLP outputs x10, its input, and the mean size of what its
    transformer blocks add to the output. (As released, the convs around them make most of a tiny model's output, so
    a low-precision path that skipped every block would differ by less than bf16's rounding.)"""
    model, case = golden_model('tiny_x4')
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(('mlp.fc2.weight', 'proj.weight')):
                param.mul_(10)
        without_blocks = copy.deepcopy(model)
        for layer in without_blocks.layers:
            layer.residual_group = PassThrough()
        blocks = (model(case['input']) - without_blocks(case['input'])).abs().mean()
    return model, case['input'], blocks


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_low_precision_with_to(dtype):
    model, x, blocks = amplified_tiny()
    with torch.no_grad():
        expected = model(x)
        out = model.to(dtype)(x.to(dtype))
    assert out.dtype == dtype
    assert (out.float() - expected).abs().mean() < 0.25 * blocks  # measured: 0.07 (bf16), 0.01 (fp16)


def test_bf16_autocast():
    model, x, blocks = amplified_tiny()
    with torch.no_grad():
        expected = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = model(x)
    assert (out.float() - expected).abs().mean() < 0.25 * blocks  # measured: 0.05


@pytest.mark.slow  # dynamo's tracing takes seconds: CI runs it, the quick loop does not
def test_torch_compile_matches_eager():
    model, case = golden_model('tiny_x4')
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(case['input']), case['output'], atol=1e-5, rtol=0)


@pytest.mark.parametrize('config, message', [
    (dict(embed_dim=30, num_heads=[4, 4]), 'num_heads 4 must divide embed_dim 30'),
    (dict(compress_ratio=32), 'compress_ratio 32 leaves no channels'),
    (dict(squeeze_factor=30), 'squeeze_factor 30 leaves no channels'),
    (dict(window_size=15), 'odd overlap'),
    (dict(upscale=5), "'pixelshuffle' does scales 2^n and 3, not 5"),
    (dict(upsampler='nearest+conv', upscale=2), "'nearest+conv' does scale 4 only"),
    (dict(upsampler='', upscale=4), "upsampler '' restores at scale 1"),
    (dict(upsampler='bilinear'), "upsampler 'bilinear' is not one of"),
    (dict(resi_connection='2conv'), "resi_connection '2conv'"),
    (dict(depths=[2, 2, 2]), 'same length'),
    (dict(attn_impl='flash'), "attn_impl 'flash'"),
])
def test_bad_configurations_fail_at_construction(config, message):
    with pytest.raises(ValueError, match=message.replace('(', r'\(').replace('^', r'\^').replace('+', r'\+')):
        HAT(**{**TINY_HAT, **config})


@pytest.mark.parametrize('config, setting, error', [
    (dict(depths=[2, 0]), 'depths', ValueError),
    (dict(depths=[], num_heads=[]), 'depths', ValueError),
    (dict(embed_dim=-24), 'embed_dim', ValueError),
    (dict(window_size=0), 'window_size', ValueError),
    (dict(mlp_ratio=0.0), 'mlp_ratio', ValueError),
    (dict(drop_path_rate=1.0), 'drop_path_rate', ValueError),
    (dict(embed_dim=30, num_heads=[4, 4]), 'num_heads', ValueError),
    (dict(qkv_bias=1), 'qkv_bias', TypeError),
])
def test_a_bad_setting_is_named_by_its_error(config, setting, error):
    with pytest.raises(SettingError) as raised:
        HATConfig(**{**TINY_HAT, **config})
    assert raised.value.setting == setting and isinstance(raised.value, error)
    assert isinstance(raised.value, TypeError) == (error is TypeError)
    assert str(raised.value).count(setting) >= 1


def test_state_dict_mismatch_is_short_and_names_keys():
    case = load_golden('tiny_x4')
    model = HAT(**{**case['config'], 'embed_dim': 36, 'num_heads': [2, 2]})
    with pytest.raises(RuntimeError) as err:
        model.load_state_dict(case['params'])
    message = str(err.value)
    assert 'shape mismatch' in message and 'conv_first.weight (24, 3, 3, 3) vs (36, 3, 3, 3)' in message
    assert message.count('\n') == 0 and len(message) < 1000

    params = dict(case['params'])
    params.pop('conv_last.bias')
    params['extra.weight'] = torch.zeros(1)
    with pytest.raises(RuntimeError, match=r'missing \(1\): conv_last.bias; unexpected \(1\): extra.weight'):
        HAT(**case['config']).load_state_dict(params)
