"""A checkpoint's network is judged from its shapes before anything is built: hostile files that describe a huge or
malformed network are refused in one line naming the file and key, in seconds and small memory, by every command."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from hat_arch import HAT
from hat_arch.checkpoint import describe, detect_config, load_model
from hat_arch.cli import hat_sr_main
from hat_arch.errors import HatError
from hat_arch.layers.init import weights_loaded_after
from hat_arch.network_cost import MAX_SETTINGS, check_limits, expected_shapes, network_bytes
from tests.conftest import GOLDEN
from tests.memory import GIB, run_measured

LAYOUTS = json.loads((GOLDEN / 'released_state_dict_shapes.json').read_text())
SMALL = dict(embed_dim=12, depths=[1], num_heads=[2], window_size=4, compress_ratio=3, squeeze_factor=4, mlp_ratio=2,
             upscale=2)


def small_state_dict(**overrides) -> dict[str, torch.Tensor]:
    return HAT(**{**SMALL, **overrides}).state_dict()


def refusal(state_dict: dict[str, torch.Tensor], name: str = 'evil.pth') -> str:
    with pytest.raises(HatError) as refused:
        detect_config(state_dict, name)
    message = str(refused.value)
    assert '\n' not in message and message.startswith(name)
    return message


# -- the shapes a configuration implies ---------------------------------------------------------------------------


@pytest.mark.parametrize('name', LAYOUTS)
def test_expected_shapes_are_the_released_state_dicts_key_for_key(name):
    released = {key: tuple(shape) for key, shape in LAYOUTS[name]['state_dict'].items()}
    assert list(expected_shapes(LAYOUTS[name]['config']).items()) == list(released.items())


@pytest.mark.parametrize('options', [
    dict(upsampler='pixelshuffle', upscale=3, resi_connection='3conv'),
    dict(upsampler='pixelshuffle', upscale=8, qkv_bias=False, patch_norm=False),
    dict(upsampler='pixelshuffledirect', upscale=3, in_chans=1),
    dict(upsampler='nearest+conv', upscale=4, resi_connection='identity'),
    dict(upsampler='', upscale=1, in_chans=4, overlap_ratio=0.25, mlp_ratio=1.5),
])
def test_expected_shapes_are_what_hat_builds_for_every_option(options):
    config = dict(embed_dim=24, depths=[1, 2], num_heads=[2, 3], window_size=8, squeeze_factor=8, compress_ratio=5,
                  **options)
    with torch.device('meta'), weights_loaded_after():
        built = HAT(**config).state_dict()
    assert list(expected_shapes(config).items()) == [(key, tuple(t.shape)) for key, t in built.items()]


def test_network_bytes_counts_parameters_and_buffers_of_the_built_network():
    with torch.device('meta'):
        model = HAT(**SMALL)
    built = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert network_bytes(SMALL) == built


# -- limits -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize('setting, value, message', [
    ('window_size', 160, "window_size 160 is more than the 64 hat_arch allows"),
    ('embed_dim', 20000, "embed_dim 20000 is more than the 2048 hat_arch allows"),
    ('depths', [2] * 65, 'depths [2, 2, 2, 2, ... (65 values)] asks for 65 groups, more than the 64 hat_arch allows'),
    ('depths', [100], 'depths [100] asks for 100 blocks in a group, more than the 64 hat_arch allows'),
    ('upscale', 32, 'upscale 32 is more than the 16 hat_arch allows'),
    ('mlp_ratio', 1000.0, 'mlp_ratio 1000.0 is more than the 16 hat_arch allows'),
    ('window_size', 0, 'window_size 0 must be a positive integer'),
    ('embed_dim', -4, 'embed_dim -4 must be a positive integer'),
    ('depths', [2, 0], 'depths [2, 0] must hold positive integers only'),
    ('num_heads', [], 'num_heads [] must be a non-empty list of positive integers'),
])
def test_limits_name_the_setting(setting, value, message):
    config = {**SMALL, 'num_heads': [2] * len(value) if setting == 'depths' else SMALL['num_heads'], setting: value}
    with pytest.raises(HatError) as refused:
        check_limits(config, 'here')
    assert str(refused.value) == f'here: {message}'


def test_a_network_larger_than_the_memory_there_is_is_refused(monkeypatch):
    monkeypatch.setattr('hat_arch.network_cost.available_memory', lambda: 64 * 2**20)
    check_limits(SMALL, 'small')
    with pytest.raises(HatError,
                       match=r'^large: the network it describes would take 0\.\d GiB to build; 0\.0 GiB can '):
        check_limits({**SMALL, 'embed_dim': 1024, 'num_heads': [8], 'depths': [8]}, 'large')


def test_every_released_configuration_is_within_the_limits():
    for layout in LAYOUTS.values():
        check_limits(layout['config'], 'released', memory=False)
    assert MAX_SETTINGS['window_size'] >= 4 * 16 and MAX_SETTINGS['embed_dim'] >= 10 * 180


# -- hostile checkpoints, refused from their shapes ---------------------------------------------------------------


def test_a_window_of_160_from_the_index_buffer_is_refused_naming_the_key():
    state_dict = small_state_dict()
    state_dict['relative_position_index_SA'] = torch.zeros(1, dtype=torch.long).expand(160**2, 160**2)
    assert refusal(state_dict) == ('evil.pth: window_size 160 (from relative_position_index_SA) is more than the '
                                   '64 hat_arch allows')


def test_a_window_of_160_from_the_bias_table_alone_is_refused_naming_the_key():
    state_dict = {k: v for k, v in small_state_dict().items() if not k.startswith('relative_position_index')}
    state_dict['layers.0.residual_group.blocks.0.attn.relative_position_bias_table'] = torch.zeros(319**2, 2)
    assert refusal(state_dict) == ('evil.pth: window_size 160 (from layers.0.residual_group.blocks.0.attn.'
                                   'relative_position_bias_table) is more than the 64 hat_arch allows')


def test_a_20000_channel_first_conv_is_refused():
    state_dict = small_state_dict()
    state_dict['conv_first.weight'] = torch.zeros(20000, 3, 3, 3)
    assert refusal(state_dict) == ('evil.pth: embed_dim 20000 (from conv_first.weight) is more than the 2048 '
                                   'hat_arch allows')


def test_a_20000_channel_input_is_refused_too():  # another field than the issue's
    state_dict = small_state_dict()
    state_dict['conv_first.weight'] = torch.zeros(12, 20000, 3, 3)
    assert refusal(state_dict) == ('evil.pth: in_chans 20000 (from conv_first.weight) is more than the 4096 '
                                   'hat_arch allows')


def test_ten_thousand_groups_are_refused_without_listing_them():
    state_dict = small_state_dict()
    state_dict.update({f'layers.{i}.residual_group.blocks.0.norm1.weight': torch.zeros(1) for i in range(1, 10_000)})
    assert refusal(state_dict) == 'evil.pth: depths asks for 10000 groups (from layers.9999), more than the 64 ' \
        'hat_arch allows'
    state_dict = {**small_state_dict(), 'layers.100000000.residual_group.blocks.0.norm1.weight': torch.zeros(1)}
    assert 'asks for 100000001 groups (from layers.100000000)' in refusal(state_dict)


def test_ten_thousand_blocks_in_one_group_are_refused():
    state_dict = small_state_dict()
    state_dict.update({f'layers.0.residual_group.blocks.{j}.norm1.weight': torch.zeros(12) for j in range(10_000)})
    assert refusal(state_dict) == ('evil.pth: depths [10000] (from the layers.N.residual_group.blocks.M keys) asks '
                                   'for 10000 blocks in a group, more than the 64 hat_arch allows')


def test_ten_thousand_stray_keys_are_named_by_count():
    state_dict = {**small_state_dict(), **{f'layers.{i}.stray': torch.zeros(1) for i in range(10_000)}}
    message = refusal(state_dict)
    assert message.startswith('evil.pth is not a consistent HAT checkpoint: unexpected (10000): layers.0.stray, ')
    assert message.endswith('(+9997 more)')


@pytest.mark.parametrize('key, tensor, message', [
    ('conv_first.weight', torch.tensor(1.0), 'conv_first.weight has shape (); a HAT has a 4-dimensional one'),
    ('layers.0.residual_group.blocks.0.conv_block.cab.0.weight', torch.zeros(0, 12, 3, 3),
     'layers.0.residual_group.blocks.0.conv_block.cab.0.weight has shape (0, 12, 3, 3); a HAT has a 4-dimensional '
     'one with no empty dimension'),
    ('layers.0.residual_group.blocks.0.mlp.fc1.weight', None,
     "is not a complete HAT checkpoint: it has no 'layers.0.residual_group.blocks.0.mlp.fc1.weight'"),
    ('relative_position_index_SA', torch.zeros(5), 'relative_position_index_SA has shape (5,)'),
    ('upsample.0.weight', torch.zeros(256), 'upsample.0.weight has shape (256,)'),
    ('layers.0.residual_group.blocks.0.attn.proj.weight', torch.zeros(12, 13),
     'is not a consistent HAT checkpoint: shape mismatch (1): layers.0.residual_group.blocks.0.attn.proj.weight '
     '(12, 13) vs (12, 12) expected'),
    ('conv_last.weight', torch.zeros(3, 64, 3), 'shape mismatch (1): conv_last.weight (3, 64, 3) vs (3, 64, 3, 3)'),
])
def test_malformed_shapes_are_one_line_naming_the_key(key, tensor, message):
    state_dict = small_state_dict()
    if tensor is None:
        del state_dict[key]
    else:
        state_dict[key] = tensor
    assert message in refusal(state_dict)


def test_a_one_row_bias_table_is_refused_by_what_it_implies():
    state_dict = {k: v for k, v in small_state_dict().items() if not k.startswith('relative_position_index')}
    state_dict['layers.0.residual_group.blocks.0.attn.relative_position_bias_table'] = torch.zeros(1, 2)
    # a window of 1, so the OCAB table's 81 rows mean an overlapping window of 9
    assert refusal(state_dict) == ('evil.pth: overlap_ratio 8 (from layers.0.residual_group.overlap_attn.'
                                   'relative_position_bias_table) is more than the 2 hat_arch allows')


# -- every command that reads a checkpoint --------------------------------------------------------------------------


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp('hostile')
    window = small_state_dict()
    window['relative_position_index_SA'] = torch.zeros(1, dtype=torch.long).expand(160**2, 160**2)
    scalar = {**small_state_dict(), 'conv_first.weight': torch.tensor(0.5)}
    torch.save({'params_ema': window}, folder / 'window160.pth')
    torch.save({'params_ema': scalar}, folder / 'scalar.pth')
    cv2.imwrite(str(folder / 'in.png'), np.zeros((8, 8, 3), np.uint8))
    return folder


@pytest.mark.parametrize('command', [['upscale', '{input}', '-o', '{out}'],
                                     ['lam', '-i', '{input}', '--box', '0,0,4,4'],
                                     ['export', '--onnx', '{out}/m.onnx']])
@pytest.mark.parametrize('file, message', [('window160.pth', 'window_size 160 (from relative_position_index_SA)'),
                                           ('scalar.pth', 'conv_first.weight has shape ()')])
def test_every_command_refuses_in_one_line(hostile, tmp_path, capsys, command, file, message):
    path = hostile / file
    argv = [a.format(input=hostile / 'in.png', out=tmp_path / 'out') for a in command] + ['-m', str(path)]
    assert hat_sr_main(argv) == 2
    err = capsys.readouterr().err.strip().replace('\r', '\n').splitlines()[-1]  # after export's progress line
    assert err.startswith(f'hat-sr {command[0]}: error: {path}') and message in err and '\n' not in err
    assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_describe_and_load_model_refuse_alike(hostile):  # the page's catalogue describes each file
    for call in (describe, load_model):
        with pytest.raises(HatError, match='window_size 160'):
            call(hostile / 'window160.pth')


# -- measured: seconds and small memory ---------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize('case', ['window160', 'conv20000', 'groups10000', 'blocks10000'])
def test_hostile_checkpoints_cost_little_to_refuse(tmp_path, case):
    state_dict = small_state_dict()
    if case == 'window160':  # no index buffers: the bias table's rows imply the window, as in the file
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith('relative_position_index')}
        state_dict['layers.0.residual_group.blocks.0.attn.relative_position_bias_table'] = torch.zeros(319**2, 2)
    elif case == 'conv20000':
        state_dict['conv_first.weight'] = torch.zeros(20000, 3, 3, 3)
    elif case == 'groups10000':
        state_dict.update({f'layers.{i}.residual_group.blocks.0.norm1.weight': torch.zeros(12) for i in range(10_000)})
    else:
        state_dict.update({f'layers.0.residual_group.blocks.{j}.norm1.weight': torch.zeros(12) for j in range(10_000)})
    path = tmp_path / f'{case}.pth'
    torch.save({'params_ema': state_dict}, path)
    cv2.imwrite(str(tmp_path / 'in.png'), np.zeros((8, 8, 3), np.uint8))
    launcher = 'from hat_arch.cli import hat_sr_main; import sys; sys.exit(hat_sr_main())'
    run = run_measured(['-c', launcher, 'upscale', tmp_path / 'in.png', '-o', tmp_path / 'out', '-m', path,
                        '--device', 'cpu'], timeout=120)
    print(f'{case}: {path.stat().st_size / 2**20:.1f} MB file, peak {run.peak_rss / GIB:.2f} GiB, {run.seconds:.1f} s')
    assert run.returncode == 2 and run.stderr.count('\n') == 1, run.stderr
    assert run.stderr.startswith(f'hat-sr upscale: error: {path}')
    assert run.peak_rss < 1.5 * GIB  # the interpreter with torch and OpenCV is about 0.7 GiB of it
