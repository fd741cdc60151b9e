"""Checkpoints: every released layout and format loads without an option file; anything else fails in one line."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from hat_arch import HAT, HATConfig, HatError
from hat_arch.archs.named_models import name_of, named_model
from hat_arch.checkpoint import ModelInfo, describe, detect_config, load_model, read_state_dict, resolve_device
from tests.conftest import GOLDEN, GOLDEN_CASES, TINY_HAT, load_golden

LAYOUTS = json.loads((GOLDEN / 'released_state_dict_shapes.json').read_text())


def meta_state_dict(shapes: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {key: torch.empty(shape, device='meta') for key, shape in shapes.items()}


def assert_config_matches(detected: HATConfig, expected: dict) -> None:
    as_list = lambda value: list(value) if isinstance(value, tuple) else value
    for key, value in expected.items():
        assert as_list(getattr(detected, key)) == as_list(value), key


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_detects_every_released_layout(name):
    layout = LAYOUTS[name]
    assert_config_matches(detect_config(meta_state_dict(layout['state_dict'])), layout['config'])


@pytest.mark.parametrize('name', GOLDEN_CASES)
def test_detects_golden_configs_except_img_range(name):
    case = load_golden(name)
    detected = detect_config(case['params'])
    assert_config_matches(detected, {k: v for k, v in case['config'].items() if k != 'img_range'})
    assert detected.img_range == 1.0  # not in the weights: the released models' value


@pytest.mark.parametrize('overrides', [
    dict(upsampler='pixelshuffledirect', upscale=3),
    dict(upsampler='nearest+conv', upscale=4),
    dict(upsampler='pixelshuffle', upscale=8),
    dict(upsampler='', upscale=1),
    dict(resi_connection='3conv', in_chans=1),
    dict(resi_connection='identity', mlp_ratio=1.5, compress_ratio=4, squeeze_factor=12),
    dict(window_size=12, overlap_ratio=0.5, num_heads=[3, 4], embed_dim=36, squeeze_factor=6),
    dict(window_size=8, overlap_ratio=0.25, depths=[1, 3, 2], num_heads=[2, 2, 2]),
])
def test_detects_every_option(overrides):
    config = {**TINY_HAT, **overrides}
    with torch.device('meta'):
        state_dict = HAT(**config).state_dict()
    detected = detect_config(state_dict)
    assert_config_matches(detected, config)
    with torch.device('meta'):  # and what is detected builds the very same layout
        rebuilt = HAT.from_config(detected).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state_dict.items()}


def test_ratios_that_do_not_divide_the_width_give_the_same_layout():
    config = {**TINY_HAT, 'compress_ratio': 5, 'squeeze_factor': 7, 'mlp_ratio': 1.3}
    with torch.device('meta'):
        state_dict = HAT(**config).state_dict()
        rebuilt = HAT.from_config(detect_config(state_dict)).state_dict()
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in state_dict.items()}


def test_detection_without_the_index_buffers():
    layout = LAYOUTS['HAT-S_SRx3']
    shapes = {k: v for k, v in layout['state_dict'].items() if not k.startswith('relative_position_index')}
    assert_config_matches(detect_config(meta_state_dict(shapes)), layout['config'])


@pytest.mark.parametrize('wrap', ['params_ema', 'params', 'bare', 'module', 'safetensors'])
def test_every_checkpoint_format_loads_and_runs_like_the_reference(tmp_path, wrap):
    case = load_golden('tiny_x3')
    params = case['params']
    path = tmp_path / ('model.safetensors' if wrap == 'safetensors' else 'model.pth')
    if wrap == 'safetensors':
        save_file({k: v.contiguous() for k, v in params.items()}, str(path))
    elif wrap == 'module':
        torch.save({f'module.{k}': v for k, v in params.items()}, path)
    elif wrap == 'bare':
        torch.save(params, path)
    else:  # BasicSR's format; the other key holds different weights to check which one is taken
        other = 'params' if wrap == 'params_ema' else 'not_weights'
        torch.save({wrap: params, other: {k: torch.zeros_like(v) for k, v in params.items()}}, path)
    model = load_model(path, device='cpu')
    assert not model.training and model.upscale == 3
    with torch.no_grad():
        torch.testing.assert_close(model(case['input_odd']), case['output_odd_reflect_pad'], atol=1e-5, rtol=0)


def test_img_range_and_other_settings_can_be_overridden(tmp_path):
    case = load_golden('tiny_x4_range255')
    torch.save({'params_ema': case['params']}, tmp_path / 'm.pth')
    model = load_model(tmp_path / 'm.pth', device='cpu', img_range=255.0, attn_impl='naive')
    with torch.no_grad():
        torch.testing.assert_close(model(case['input']), case['output'], atol=1e-5, rtol=0)


def test_precision_casts_the_weights(tmp_path):
    torch.save(load_golden('tiny_x2')['params'], tmp_path / 'm.pth')
    model = load_model(tmp_path / 'm.pth', device='cpu', precision='bf16')
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}


def test_missing_index_buffers_are_rebuilt(tmp_path):
    case = load_golden('tiny_x2')
    torch.save({k: v for k, v in case['params'].items() if 'relative_position_index' not in k}, tmp_path / 'm.pth')
    model = load_model(tmp_path / 'm.pth', device='cpu')
    with torch.no_grad():
        torch.testing.assert_close(model(case['input']), case['output'], atol=1e-5, rtol=0)


def one_line_error(call) -> str:
    with pytest.raises(HatError) as info:
        call()
    message = str(info.value)
    assert '\n' not in message
    return message


def test_img_range_must_be_positive(tmp_path):
    # 0 passed everything and wrote blank images: the input is multiplied by it and the output divided.
    torch.save(load_golden('tiny_x2')['params'], tmp_path / 'm.pth')
    message = one_line_error(lambda: load_model(tmp_path / 'm.pth', device='cpu', img_range=0.0))
    assert message == f'{tmp_path / "m.pth"}: cannot build HAT: img_range must be positive, got 0.0'


def test_a_file_that_is_not_hat_says_so(tmp_path):
    swinir_like = {'conv_first.weight': torch.zeros(60, 3, 3, 3),
                   'layers.0.residual_group.blocks.0.attn.relative_position_bias_table': torch.zeros(225, 6)}
    torch.save({'params': swinir_like}, tmp_path / 'swinir.pth')
    message = one_line_error(lambda: load_model(tmp_path / 'swinir.pth', device='cpu'))
    assert 'swinir.pth is not a HAT checkpoint' in message and 'overlap_attn' in message


@pytest.mark.parametrize('content, expected', [
    (b'\x89PNG\r\n\x1a\nnot really', 'cannot read checkpoint bad.pth: not a PyTorch checkpoint (.pth) file'),
    (b'hello\n', 'not a PyTorch checkpoint'),  # torch.load's reason was 'KeyError: 101'
    (b'', 'not a PyTorch checkpoint'),
    (b'PK\x03\x04truncated', 'cannot read checkpoint bad.pth: damaged or truncated (PytorchStreamReader failed'),
    (None, 'does not exist'),
])
def test_unreadable_checkpoints(tmp_path, content, expected):
    path = tmp_path / 'bad.pth'
    if content is not None:
        path.write_bytes(content)
    message = one_line_error(lambda: read_state_dict(path))
    assert str(path) in message and expected.replace('bad.pth', str(path)) in message


@pytest.mark.parametrize('content, expected', [
    (b'\x89PNG\r\n\x1a\nnot really', 'cannot read pretrained network {}: not a PyTorch checkpoint'),
    (b'PK\x03\x04truncated', 'cannot read pretrained network {}: damaged or truncated'),
    ({'params': {'w': torch.zeros(1)}, 'opt': torch.optim.SGD}, 'pretrained network {} was refused'),
    ({'params': {'iter': 5}}, 'pretrained network {} holds no state dict'),
    ({'net': {'w': torch.zeros(1)}}, "pretrained network {} has no 'params' entry"),
])
def test_every_failure_names_the_file_as_the_caller_calls_it(tmp_path, content, expected):
    # HATModel reads with what='pretrained network': each message said 'checkpoint' but the missing file's.
    path = tmp_path / 'net_g.pth'
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    message = one_line_error(lambda: read_state_dict(path, param_key='params', what='pretrained network'))
    assert expected.format(path) in message and 'checkpoint' not in message.split(':')[0]


def test_pickled_code_is_refused_in_one_line_that_suggests_nothing_unsafe(tmp_path):
    torch.save({'params': {'w': torch.zeros(1)}, 'opt': torch.optim.SGD}, tmp_path / 'code.pth')
    message = one_line_error(lambda: read_state_dict(tmp_path / 'code.pth'))
    assert 'code.pth was refused: loading it would run code (it names the Python object torch.optim.sgd.SGD)' in message
    assert 'weights_only' not in message and 'safe_globals' not in message and len(message) < 300


def test_a_truncated_checkpoint_is_one_short_line(tmp_path):
    torch.save({'params': {'w': torch.zeros(1000)}}, tmp_path / 'whole.pth')
    (tmp_path / 'cut.pth').write_bytes((tmp_path / 'whole.pth').read_bytes()[:2000])
    message = one_line_error(lambda: read_state_dict(tmp_path / 'cut.pth'))
    assert message == (f'cannot read checkpoint {tmp_path / "cut.pth"}: damaged or truncated (PytorchStreamReader '
                       'failed reading zip archive: failed finding central directory)')


def test_a_checkpoint_without_tensors(tmp_path):
    torch.save({'iter': 5}, tmp_path / 'state.pth')
    assert 'holds no state dict' in one_line_error(lambda: read_state_dict(tmp_path / 'state.pth'))


def test_param_key_picks_the_entry_as_basicsr_does(tmp_path):
    ema, plain = {'w': torch.ones(1)}, {'w': torch.zeros(1)}
    torch.save({'params_ema': ema, 'params': plain}, tmp_path / 'both.pth')
    assert read_state_dict(tmp_path / 'both.pth')['w'] == 1  # no key: the EMA weights first
    assert read_state_dict(tmp_path / 'both.pth', param_key='params')['w'] == 0
    torch.save({'params': plain}, tmp_path / 'plain.pth')
    assert read_state_dict(tmp_path / 'plain.pth', param_key='params_ema')['w'] == 0  # BasicSR's fallback
    torch.save({'net': plain}, tmp_path / 'other.pth')
    message = one_line_error(lambda: read_state_dict(tmp_path / 'other.pth', param_key='params_ema'))
    assert "other.pth has no 'params_ema' entry (its keys: net)" in message
    torch.save({f'entry{i}': {} for i in range(100)}, tmp_path / 'many.pth')
    message = one_line_error(lambda: read_state_dict(tmp_path / 'many.pth', param_key='params'))
    assert message.endswith('(its keys: entry0, entry1, entry2, entry3, entry4, ...)')
    torch.save(plain, tmp_path / 'bare.pth')  # a bare state dict is taken as it is, whatever the key
    assert read_state_dict(tmp_path / 'bare.pth', param_key='params')['w'] == 0


def test_a_cuda_device_that_does_not_exist_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    assert resolve_device('cuda:0') == torch.device('cuda:0')
    message = one_line_error(lambda: resolve_device('cuda:1'))
    assert message == 'device cuda:1 asked for, but this machine has 1 CUDA GPU(s): cuda:0 to cuda:0'


def test_weights_that_do_not_fit_the_override(tmp_path):
    torch.save(load_golden('tiny_x2')['params'], tmp_path / 'm.pth')
    message = one_line_error(lambda: load_model(tmp_path / 'm.pth', device='cpu', mlp_ratio=4))
    assert 'm.pth' in message and 'fc1' in message


@pytest.mark.parametrize('wrap', [
    lambda sd: {'params-ema': sd},  # Real-ESRGAN
    lambda sd: {'state_dict': sd, 'epoch': 3},  # Lightning (non-tensor entries beside it)
    lambda sd: {'model': sd},
    lambda sd: {f'netG.{key}': value for key, value in sd.items()},  # a GAN trainer's generator prefix
    lambda sd: {'state_dict': {f'module.{key}': value for key, value in sd.items()}},
])
def test_state_dicts_that_other_tools_save_load(tmp_path, wrap):
    case = load_golden('tiny_x2')
    torch.save(wrap(case['params']), tmp_path / 'm.pth')
    model = load_model(tmp_path / 'm.pth', device='cpu')
    with torch.no_grad():
        torch.testing.assert_close(model(case['input']), case['output'], atol=1e-5, rtol=0)


def test_describe_reads_a_checkpoint_and_a_built_model_alike(tmp_path):
    case = load_golden('tiny_x3')
    torch.save({'params': case['params']}, tmp_path / 'm.pth')
    info = describe(tmp_path / 'm.pth')
    assert isinstance(info, ModelInfo) and info.path == tmp_path / 'm.pth'
    assert (info.scale, info.in_chans, info.window_size, info.min_input_size) == (3, 3, 8, 1)
    assert info.precisions == ('fp32', 'bf16') and info.name is None
    model = load_model(tmp_path / 'm.pth', device='cpu', attn_impl='naive')
    assert info.num_params == sum(p.numel() for p in model.parameters())
    assert_config_matches(info.config, case['config'])
    loaded = describe(model)  # made when loading, and kept with the model
    assert loaded is model.model_info and describe(model) is loaded and loaded.path == info.path
    assert loaded.config.attn_impl == 'naive' and loaded.config.drop_path_rate == 0
    assert loaded.config.without_run_settings() == info.config.without_run_settings()
    model.set_attn_impl('sdpa')  # a changed model is described as it is now
    assert describe(model).config == loaded.config.replace(attn_impl='sdpa') and describe(model).path == info.path
    assert describe(HAT(**case['config'])).path is None  # a built model has a descriptor too
    assert info.summary() == 'HAT x3 (pixelshuffle): 3 channels, width 24, 2 x 2 blocks, window 8'


@pytest.mark.parametrize('name', sorted(LAYOUTS))
def test_detection_names_released_networks(name):
    config = detect_config(meta_state_dict(LAYOUTS[name]['state_dict']))
    assert config == named_model(name).config and name_of(config) == name


def test_describe_names_a_released_checkpoint(tmp_path):
    shapes = LAYOUTS['HAT-S_SRx2']['state_dict']
    save_file({key: torch.zeros(shape) for key, shape in shapes.items()}, tmp_path / 'm.safetensors')
    info = describe(tmp_path / 'm.safetensors')
    assert info.name == 'HAT-S_SRx2' and info.summary().endswith('window 16 (the HAT-S_SRx2 network)')


def test_one_mismatch_message_for_every_loader(tmp_path):
    torch.save(load_golden('tiny_x2')['params'], tmp_path / 'm.pth')
    message = one_line_error(lambda: load_model(tmp_path / 'm.pth', device='cpu', mlp_ratio=4))
    assert message.startswith(f'checkpoint {tmp_path / "m.pth"} does not fit HAT: shape mismatch (')
