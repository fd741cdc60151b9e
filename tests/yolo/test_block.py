"""HAT as a YOLO block: built from model YAMLs with channels from the graph, never an identity, one-line errors."""
from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch
import yaml

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
import hat_arch.yolo  # noqa: E402
from hat_arch import HAT  # noqa: E402
from hat_arch.cli import yolo as yolo_cli  # noqa: E402
from hat_arch.errors import HatError  # noqa: E402
from hat_arch.yolo import HATBlock, model_yaml, parser  # noqa: E402
from hat_arch.yolo.block import FEATURE_MAP_DEFAULTS, resolve_options  # noqa: E402


def detection_model(cfg):
    from ultralytics.nn.tasks import DetectionModel

    return DetectionModel(cfg, verbose=False)


def hat_layers(model) -> list[HATBlock]:
    return [m for m in model.model if isinstance(m, HATBlock)]


def tiny_yaml(hat_args: list, hat_from: int = -1) -> dict:
    """A two-conv detector with a HAT row after the first conv."""
    return {'nc': 2, 'backbone': [[-1, 1, 'Conv', [16, 3, 2]], [hat_from, 1, 'HAT', hat_args],
                                  [-1, 1, 'Conv', [32, 3, 2]]],
            'head': [[[1, 2], 1, 'Detect', ['nc']]]}


def test_scale_one_hat_is_a_learning_residual_block_not_an_identity():
    hat = HAT(in_chans=64, upscale=1, upsampler='', embed_dim=32, depths=[1], num_heads=[2], window_size=8)
    x = torch.randn(1, 64, 20, 20)
    y = hat(x)
    assert y.shape == x.shape
    assert (y - x).abs().max() > 1e-2
    y.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 0 for p in hat.parameters())


def test_the_block_is_its_input_plus_a_residual_that_learns_on_both_paths(monkeypatch):
    block = HATBlock(16, 16, [1], [2], 4)  # a map that is not a multiple of the window: padded and cropped back
    x = torch.randn(2, 16, 10, 14)
    y = block(x)
    assert y.shape == x.shape and (y - x).abs().max() > 1e-2
    y.square().mean().backward()  # (a channel attention's squeeze may start with a dead ReLU: no non-zero check there)
    assert all(p.grad is not None for p in block.parameters()) and block.hat.conv_last.weight.grad.abs().max() > 0
    monkeypatch.setattr(torch.onnx, 'is_in_onnx_export', lambda: True)  # the explicit attention, for the exporter
    with torch.no_grad():
        torch.testing.assert_close(block(x), y.detach(), rtol=1e-4, atol=1e-5)
    assert block.hat.attn_impl != 'naive'  # (set back after the export's forward)


def test_article_layout_builds_hat_on_the_image_and_it_is_not_an_identity():
    model = detection_model(model_yaml('yolov8n-hat-layer0.yaml'))
    block = model.model[0]
    assert isinstance(block, HATBlock) and block.in_channels == 3
    assert block.options['upscale'] == 1 and block.options['upsampler'] == ''
    image = torch.rand(1, 3, 64, 64)
    assert (block(image) - image).abs().max() > 1e-3
    model.eval()
    with torch.no_grad():
        assert model(image)[0].shape == (1, 4 + 80, 8 * 8 + 4 * 4 + 2 * 2)


@pytest.mark.parametrize('scale, channels', [('n', [64, 128, 256]), ('s', [128, 256, 512])])
def test_neck_layout_takes_its_channels_from_the_graph_at_every_scale(scale, channels):
    model = detection_model(model_yaml(f'yolov8{scale}-hat-neck.yaml'))
    assert [b.in_channels for b in hat_layers(model)] == channels
    assert [m.i for m in model.model if isinstance(m, HATBlock)] == [22, 23, 24]
    model.eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 96, 64))[0].shape == (1, 84, 12 * 8 + 6 * 4 + 3 * 2)


def test_scaled_names_load_from_a_folder_with_a_digit_before_a_scale_letter(tmp_path):
    from ultralytics import YOLO

    folder = tmp_path / 'tmp.Q4sGxc' / 'envs' / 'yolo11m'  # Ultralytics' scale pattern matches here first
    folder.mkdir(parents=True)
    (folder / 'yolov8-hat-neck.yaml').write_text((hat_arch.yolo.CFG_DIR / 'yolov8-hat-neck.yaml').read_text())
    scaled = folder / 'yolov8s-hat-neck.yaml'
    model = detection_model(str(scaled))
    assert model.yaml['scale'] == 's' and model.yaml['yaml_file'] == str(scaled)
    assert [b.in_channels for b in hat_layers(model)] == [128, 256, 512]
    assert [b.in_channels for b in hat_layers(YOLO(scaled).model)] == [128, 256, 512]
    with pytest.raises(FileNotFoundError, match='yolov8x-hat-head.yaml'):  # a missing file is still Ultralytics' error
        detection_model(str(folder / 'yolov8x-hat-head.yaml'))


def test_registering_twice_wraps_the_loader_once():
    from ultralytics.engine import model as engine_model
    from ultralytics.nn import tasks

    parser.register()
    for module in (tasks, engine_model):
        assert getattr(module.yaml_model_load, 'hat_arch_scaled_names', False)
        assert not getattr(module.yaml_model_load.__wrapped__, 'hat_arch_scaled_names', False)


def test_yaml_argument_forms():
    assert resolve_options(32, [])['embed_dim'] == FEATURE_MAP_DEFAULTS.embed_dim
    positional = resolve_options(32, [48, [1, 1], [3, 6], 4])
    assert (positional['embed_dim'], positional['depths'], positional['num_heads'], positional['window_size']) \
        == (48, (1, 1), (3, 6), 4)
    mixed = resolve_options(32, [48, {'mlp_ratio': 1.5, 'num_heads': [6]}])
    assert (mixed['embed_dim'], mixed['mlp_ratio'], mixed['num_heads'], mixed['in_chans']) == (48, 1.5, (6, ), 32)
    model = detection_model(tiny_yaml([{'embed_dim': 24, 'depths': [1], 'num_heads': [3], 'window_size': 4}]))
    (block, ) = hat_layers(model)
    assert (block.in_channels, block.options['embed_dim'], block.hat.window_size) == (16, 24, 4)


def test_yaml_repeats_build_a_chain_of_blocks():
    d = tiny_yaml([{'embed_dim': 16, 'depths': [1], 'num_heads': [2]}])
    d['backbone'][1][1] = 2
    model = detection_model(d)
    assert [type(b) for b in model.model[1]] == [HATBlock, HATBlock]


def one_line_error(build, match: str) -> str:
    with pytest.raises(HatError, match=match) as error:
        build()
    assert '\n' not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize('hat_args, match', [
    ([{'windw_size': 8}], r"HAT has no argument 'windw_size' \(did you mean 'window_size'\?\)"),
    ([{'upscale': 2}], r"no argument 'upscale' \(fixed by the block"),
    ([{'num_heads': [5]}], r'HAT on 16 channels cannot build: num_heads 5 must divide embed_dim 64'),
    (['wide'], r"HAT argument embed_dim='wide' has the wrong type"),
    ([64, [1], [4], 8, 2], r'at most 4 positional arguments'),
    ([64, [0], [4]], r'HAT argument depths=\[0\] must be a list of positive numbers, one per group \(default: \[2\]\)'),
    ([-64], r'HAT argument embed_dim=-64 must be a positive number \(default: 64\)'),
    ([64, [2], [4], 0], r'window_size=0 must be a positive number \(default: 8\)'),
    ([{'compress_ratio': 0}], r'compress_ratio=0 must be a positive number \(default: 4\)'),
    ([{'depths': 2}], r'depths=2 has the wrong type: expected a list of integers \(default: \[2\]\)'),
    ([{'mlp_ratio': 0}], r'mlp_ratio=0 must be positive \(default: 2.0\)'),
    ([{'drop_path_rate': 1.0}], r'drop_path_rate=1.0 must be in \[0, 1\) \(default: 0.0\)'),
    ([{'num_heads': [5], 'embed_dim': 64}], r'cannot build: num_heads 5 must divide embed_dim 64 \(default: \[4\]\)'),
])
def test_bad_hat_arguments_are_one_line_naming_the_file_layer_and_value(tmp_path, hat_args, match):
    path = tmp_path / 'mine.yaml'
    path.write_text(yaml.safe_dump(tiny_yaml(hat_args)))
    message = one_line_error(lambda: detection_model(str(path)), match)
    assert message.startswith(f'{path} layer 1: ')


def test_hat_takes_one_input_layer():
    one_line_error(lambda: detection_model(tiny_yaml([], hat_from=[0, 0])), r'layer 1: HAT takes one input layer')


def test_a_parser_that_is_not_recognised_fails_loudly():
    def parse_model(d, ch, verbose=True):
        return globals()[d]  # a lookup the hook does not rely on
    for fake, match in [(types.SimpleNamespace(), 'ultralytics.nn.tasks has no parse_model'),
                        (types.SimpleNamespace(parse_model=lambda cfg, channels: None),
                         r"parse_model takes \('cfg', 'channels'\)"),
                        (types.SimpleNamespace(parse_model=parse_model), 'no longer looks modules up by name')]:
        one_line_error(lambda: parser.check_parser(fake),
                       f'Ultralytics .* is not supported by hat_arch.yolo: .*{match}')


def test_a_model_built_without_the_hook_fails_instead_of_skipping_hat():
    from ultralytics.nn import tasks

    unhooked = tasks.parse_model.__wrapped__
    one_line_error(lambda: unhooked(tiny_yaml([]), 3, False), "parsed without hat_arch's parse_model hook")


def test_registration_is_idempotent():
    from ultralytics.nn import tasks

    hooked = tasks.parse_model
    hat_arch.yolo.register()
    assert tasks.parse_model is hooked and tasks.parse_model.__wrapped__.__module__ == 'ultralytics.nn.tasks'


def test_missing_extra_is_one_line_naming_it(monkeypatch):
    for name in [n for n in sys.modules if n == 'hat_arch.yolo' or n.startswith('hat_arch.yolo.')]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, 'ultralytics', None)  # import ultralytics -> ImportError
    one_line_error(lambda: importlib.import_module('hat_arch.yolo'), r"pip install 'hat_arch\[yolo\]'")


def test_unknown_shipped_name_lists_the_shipped_ones():
    message = one_line_error(lambda: model_yaml('yolov8n-hat-head'), "no shipped model YAML 'yolov8n-hat-head.yaml'")
    assert 'yolo11-hat-neck.yaml' in message and 'yolov8-hat-layer0.yaml' in message


def test_python_api_takes_shipped_names_bare_and_a_local_file_wins(tmp_path, monkeypatch):
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    model = YOLO('yolo11s-hat-neck.yaml')
    assert model.task == 'detect' and model.model.yaml['scale'] == 's'
    assert [b.in_channels for b in hat_layers(model.model)] == [128, 256, 512]
    assert YOLO('yolo26n-seg-hat-neck.yaml').task == 'segment'
    local = tiny_yaml([{'embed_dim': 16, 'depths': [1], 'num_heads': [2]}])
    (tmp_path / 'yolo11-hat-neck.yaml').write_text(yaml.safe_dump(local))  # the user's file of that name
    assert [b.options['embed_dim'] for b in hat_layers(YOLO('yolo11n-hat-neck.yaml').model)] == [16]
    with pytest.raises(FileNotFoundError, match='elsewhere.* does not exist'):  # a folder names the user's file only
        YOLO(str(tmp_path / 'elsewhere' / 'yolo11n-hat-neck.yaml'))


def test_cli_prints_bad_hat_arguments_as_one_line(tmp_path, capsys):
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump(tiny_yaml([{'num_heads': [5]}])))
    assert yolo_cli.main(['train', f'model={path}', 'data=unused.yaml', 'device=cpu']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'hat-yolo: error: {path} layer 1: HAT on 16 channels cannot build')


def test_cli_hands_every_argument_to_ultralytics_whole(monkeypatch):
    # Joined into one string for entrypoint(), an argument with a space (a path) was refused.
    from ultralytics import cfg

    seen = []
    monkeypatch.setattr(cfg, 'entrypoint', lambda: seen.append(list(cfg.ARGV)))
    before = list(cfg.ARGV)
    assert yolo_cli.main(['predict', 'source=/my photos/a.jpg', 'model=yolov8n-hat-neck.yaml']) == 0
    assert seen == [['hat-yolo', 'predict', 'source=/my photos/a.jpg', 'model=yolov8n-hat-neck.yaml']]
    assert cfg.ARGV == before


@pytest.mark.parametrize('qk_scale', [None, 0.1])
def test_every_value_hat_takes_builds(qk_scale):  # qk_scale: null is HAT's own default
    assert resolve_options(16, [{'qk_scale': qk_scale}])['qk_scale'] == qk_scale
