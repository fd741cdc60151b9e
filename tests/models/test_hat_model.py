"""HATModel: inference through run_network (padding, tiles, self-ensemble), EMA, mode restore, AMP, checkpoints."""
from __future__ import annotations

import copy
import json
import re
from unittest import mock

import cv2
import numpy as np
import pytest
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.utils.matlab_functions import imresize

from hat_arch.errors import HatError
from hat_arch import inference
from hat_arch.inference import self_ensemble
from hat_arch.models.hat_model import HATModel, metrics_table
from tests.conftest import DATA, TINY_HAT, basicsr_log

PSNR = {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}


def make_opt(tmp_path, is_train=False, **overrides) -> dict:
    """Options as BasicSR's parse_options leaves them, for a tiny HAT on the CPU."""
    opt = {
        'name': 'tiny', 'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0, 'is_train': is_train, 'dist': False,
        'rank': 0, 'world_size': 1, 'network_g': dict(TINY_HAT, type='HAT'),
        'datasets': {'test_1': {}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'visualization': str(tmp_path / 'visualization'),
                 'results_root': str(tmp_path), 'models': str(tmp_path / 'models')},
        'val': {'suffix': None, 'pbar': False, 'metrics': {'psnr': dict(PSNR)}},
    }
    if is_train:
        opt['train'] = {'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}}
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(opt.get(key), dict):
            opt[key].update(value)
        else:
            opt[key] = value
    return opt


class CountCalls:
    """Counts the forward calls of a module and the input sizes it saw."""

    def __init__(self, module: torch.nn.Module):
        self.sizes = []
        module.register_forward_hook(lambda m, args, out: self.sizes.append(tuple(args[0].shape[-2:])))


def test_any_lr_size_gives_the_network_output(tmp_path):
    model = HATModel(make_opt(tmp_path))
    model.lq = torch.rand(1, 3, 13, 19)
    model.test()
    assert model.output.shape == (1, 3, 52, 76)
    with torch.no_grad():
        torch.testing.assert_close(model.output, model.net_g(model.lq))


def test_tiles_cover_the_image_and_blend_to_the_whole_image_output(tmp_path):
    model = HATModel(make_opt(tmp_path, tile={'tile_size': 16, 'tile_pad': 64}))
    calls = CountCalls(model.net_g)
    model.lq = torch.rand(1, 3, 40, 36)
    model.test()
    assert len(calls.sizes) == 9  # 3 x 3 tiles of 16 over 40 x 36
    with torch.no_grad():  # context as large as the image: every tile sees the whole image, so blending is exact
        torch.testing.assert_close(model.output, model.net_g(model.lq), atol=1e-5, rtol=1e-5)


def test_a_null_tile_pad_is_the_default_pad(tmp_path):
    # The option check accepts 'tile_pad: null'; it failed in the first validation with a TypeError.
    model = HATModel(make_opt(tmp_path, tile={'tile_size': 16, 'tile_pad': None}))
    model.lq = torch.rand(1, 3, 40, 36)
    model.test()
    reference = HATModel(make_opt(tmp_path, tile={'tile_size': 16, 'tile_pad': 32}))
    reference.net_g.load_state_dict(model.net_g.state_dict())
    reference.lq = model.lq
    reference.test()
    torch.testing.assert_close(model.output, reference.output)


def test_tile_size_auto_and_out_of_memory_retry_as_in_the_api(tmp_path):
    model = HATModel(make_opt(tmp_path, tile={'tile_size': 'auto', 'tile_pad': 4}))
    calls = CountCalls(model.net_g)
    model.lq = torch.rand(1, 3, 24, 24)
    with mock.patch.object(inference, '_free_memory', return_value=1.0):  # room for the smallest tiles only
        model.test()
    assert len(calls.sizes) == 9 and model.output.shape == (1, 3, 96, 96)  # 3 x 3 tiles of one window (8)

    sizes = []
    forward = model.net_g.forward

    def out_of_memory_above_16(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 16:
            raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
        return forward(x)

    model = HATModel(make_opt(tmp_path, tile={'tile_pad': 4}))  # no tile size: the whole image first
    model.lq = torch.rand(1, 3, 24, 24)
    with mock.patch.object(model.net_g, 'forward', side_effect=out_of_memory_above_16):
        model.test()
    assert sizes[0] == 24 and max(sizes[1:]) <= 16 and model.output.shape == (1, 3, 96, 96)


def test_tile_errors_are_raised(tmp_path):
    model = HATModel(make_opt(tmp_path, tile={'tile_size': 16, 'tile_pad': 4}))
    model.lq = torch.rand(1, 5, 32, 32)  # 5 channels: the network's first conv fails on every tile
    with pytest.raises(RuntimeError):
        model.test()


def test_self_ensemble_averages_eight_transforms(tmp_path):
    model = HATModel(make_opt(tmp_path, val={'self_ensemble': True}))
    calls = CountCalls(model.net_g)
    model.lq = torch.rand(1, 3, 12, 20)
    model.test()
    assert len(calls.sizes) == 8 and (20, 12) in calls.sizes  # the transposed views are run too
    torch.testing.assert_close(model.output, self_ensemble(model.net_g.eval(), model.lq))


def test_ema_network_is_used_and_training_network_stays_in_train_mode(tmp_path):
    model = HATModel(make_opt(tmp_path, is_train=True, train={'ema_decay': 0.999}))
    ema_calls, train_calls = CountCalls(model.net_g_ema), CountCalls(model.net_g)
    assert model.net_g.training
    model.lq = torch.rand(1, 3, 8, 8)
    model.test()
    assert len(ema_calls.sizes) == 1 and not train_calls.sizes
    assert model.net_g.training and not model.net_g_ema.training


def test_network_goes_back_to_its_mode_after_test(tmp_path):
    model = HATModel(make_opt(tmp_path, is_train=True))
    seen = []
    model.net_g.register_forward_hook(lambda m, a, o: seen.append(m.training))
    model.lq = torch.rand(1, 3, 8, 8)
    model.test()
    assert seen == [False] and model.net_g.training  # ran in eval mode (no drop-path), back to train after
    model.net_g.eval()
    model.test()
    assert not model.net_g.training


@pytest.mark.parametrize('amp', ['bf16', 'fp16'])
def test_mixed_precision_training_step(tmp_path, amp):
    model = HATModel(make_opt(tmp_path, is_train=True, train={'amp': amp}))
    assert model.grad_scaler.is_enabled() == (amp == 'fp16')
    before = copy.deepcopy(model.net_g.state_dict())
    autocast_dtypes = []
    model.net_g.conv_first.register_forward_hook(lambda m, a, out: autocast_dtypes.append(out.dtype))
    model.feed_data({'lq': torch.rand(2, 3, 16, 16), 'gt': torch.rand(2, 3, 64, 64)})
    model.optimize_parameters(1)
    assert autocast_dtypes == [{'bf16': torch.bfloat16, 'fp16': torch.float16}[amp]]
    assert np.isfinite(model.log_dict['l_pix'])
    assert not torch.equal(before['conv_first.weight'], model.net_g.state_dict()['conv_first.weight'])


def test_a_perceptual_loss_without_vgg_weights_fails_at_start_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/pretrained_models/vgg19-dcbb9e9d.pth here
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', mock.Mock(side_effect=AssertionError('downloading')))
    perceptual = {'type': 'PerceptualLoss', 'layer_weights': {'conv5_4': 1.0}, 'vgg_type': 'vgg19'}
    with pytest.raises(HatError, match='perceptual_opt needs the vgg19 weights vgg19-dcbb9e9d.pth, not found'):
        HATModel(make_opt(tmp_path, is_train=True, train={'perceptual_opt': perceptual}))


def test_unknown_amp_value_is_one_line_error(tmp_path):
    with pytest.raises(HatError, match="train: amp must be one of bf16, fp16, got 'fp8'"):
        HATModel(make_opt(tmp_path, is_train=True, train={'amp': 'fp8'}))


def test_missing_pretrained_file_names_it(tmp_path):
    missing = tmp_path / 'nope.pth'
    with pytest.raises(HatError, match=f'pretrained network {missing} does not exist'):
        HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(missing)}))


def test_checkpoint_of_another_network_names_the_file_and_first_mismatch(tmp_path):
    other = dict(TINY_HAT, embed_dim=12)
    ckpt = tmp_path / 'other.pth'
    torch.save({'params': HATModel(make_opt(tmp_path, network_g=dict(other, type='HAT'))).net_g.state_dict()}, ckpt)
    with pytest.raises(HatError, match=f'pretrained network {ckpt} does not fit HAT: .*shape mismatch') as info:
        HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(ckpt)}))
    assert '\n' not in str(info.value)


@pytest.mark.parametrize('layout', ['bare .pth', '.safetensors', 'without position indices'])
def test_pretrained_files_that_hat_sr_reads_load_in_training_too(tmp_path, layout):
    # One reader for the model, the CLI and the API: what `hat-sr` accepts, `basicsr train/test` accepts.
    source = HATModel(make_opt(tmp_path)).net_g.state_dict()
    if layout == '.safetensors':
        from safetensors.torch import save_file

        ckpt = tmp_path / 'net.safetensors'
        save_file({k: v.contiguous() for k, v in source.items()}, str(ckpt))
    else:
        ckpt = tmp_path / 'net.pth'
        if layout == 'without position indices':
            source = {k: v for k, v in source.items() if not k.startswith('relative_position_index')}
            torch.save({'params': source}, ckpt)
        else:
            torch.save(source, ckpt)
    model = HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(ckpt)}))
    loaded = model.net_g.state_dict()
    for key, value in source.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_the_log_names_the_entry_loaded_when_it_fell_back_to_params(tmp_path, caplog):
    torch.save({'params': HATModel(make_opt(tmp_path)).net_g.state_dict()}, tmp_path / 'net.pth')
    with basicsr_log(caplog):
        HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(tmp_path / 'net.pth'),
                                          'param_key_g': 'params_ema'}))
    assert 'with param key: [params] (params_ema is not in the file).' in caplog.text


def test_non_strict_load_of_an_unrelated_network_is_refused(tmp_path):
    ckpt = tmp_path / 'cnn.pth'
    torch.save({'params': torch.nn.Conv2d(3, 3, 3).state_dict()}, ckpt)
    with pytest.raises(HatError, match=f'{ckpt} holds another network'):
        HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(ckpt), 'strict_load_g': False}))


def test_non_strict_load_of_a_network_of_another_width_is_refused(tmp_path):
    # The names match, no shape does: BasicSR skipped every tensor with a warning and tested random weights.
    ckpt = tmp_path / 'wide.pth'
    wide = HATModel(make_opt(tmp_path, network_g=dict(TINY_HAT, type='HAT', embed_dim=2 * TINY_HAT['embed_dim'])))
    torch.save({'params': wide.net_g.state_dict()}, ckpt)
    with pytest.raises(HatError, match=rf'{ckpt} fits only \d+ of the \d+ tensors of HAT;.*shape mismatch'):
        HATModel(make_opt(tmp_path, path={'pretrain_network_g': str(ckpt), 'strict_load_g': False}))


def test_x2_checkpoint_fine_tunes_x4_only_non_strict(tmp_path):
    x2 = HATModel(make_opt(tmp_path, scale=2, network_g=dict(TINY_HAT, type='HAT', upscale=2)))
    ckpt = tmp_path / 'x2.pth'
    torch.save({'params_ema': x2.net_g.state_dict()}, ckpt)
    path = {'pretrain_network_g': str(ckpt), 'param_key_g': 'params_ema'}
    with pytest.raises(HatError, match='missing'):
        HATModel(make_opt(tmp_path, path=dict(path, strict_load_g=True)))
    x4 = HATModel(make_opt(tmp_path, path=dict(path, strict_load_g=False)))
    torch.testing.assert_close(x4.net_g.conv_first.weight, x2.net_g.conv_first.weight)


def test_test_run_saves_images_per_set_and_writes_the_metrics_table(tmp_path, caplog):
    gt_dir, lq_dir = tmp_path / 'gt', tmp_path / 'lq'
    gt_dir.mkdir(), lq_dir.mkdir()
    for name in ('baby', 'bird'):
        gt = cv2.imread(str(DATA / 'Set5' / 'GTmod4' / f'{name}.png'))[:48, :40]
        cv2.imwrite(str(gt_dir / f'{name}.png'), gt)
        cv2.imwrite(str(lq_dir / f'{name}.png'), np.clip(imresize(gt / 255., 1 / 4) * 255, 0, 255).round())
    dataset = build_dataset({'name': 'Mini', 'type': 'PairedImageDataset', 'dataroot_gt': str(gt_dir),
                             'dataroot_lq': str(lq_dir), 'io_backend': {'type': 'disk'}, 'phase': 'test',
                             'scale': 4})
    loader = build_dataloader(dataset, {'phase': 'test'}, num_gpu=0, dist=False)
    model = HATModel(make_opt(tmp_path))
    with basicsr_log(caplog):
        model.validation(loader, current_iter='tiny', tb_logger=None, save_img=True)
    saved = sorted(p.name for p in (tmp_path / 'visualization' / 'Mini').iterdir())
    assert saved == ['baby_tiny.png', 'bird_tiny.png']
    assert cv2.imread(str(tmp_path / 'visualization' / 'Mini' / 'baby_tiny.png')).shape == (48, 40, 3)
    metrics = json.loads((tmp_path / 'metrics.json').read_text())
    assert set(metrics) == {'Mini'} and 5 < metrics['Mini']['psnr'] < 60
    # the last set's table
    assert f"| dataset | psnr |\n| --- | --- |\n| Mini | {metrics['Mini']['psnr']:.4f} |" in caplog.text
    assert re.search(r'# psnr: \d+\.\d+\n', caplog.text) and 'Best' not in caplog.text  # no 'Best: ... @ tiny iter'


def test_metrics_table():
    table = metrics_table({'Set5': {'psnr': 30.12346, 'ssim': 0.8}, 'Set14': {'psnr': 27.0}})
    assert table.splitlines() == ['| dataset | psnr | ssim |', '| --- | --- | --- |',
                                  '| Set5 | 30.1235 | 0.8000 |', '| Set14 | 27.0000 |  |']


@pytest.mark.slow  # trains
def test_basicsr_train_then_tiled_test_is_close_to_whole_image_test(tmp_path, monkeypatch):
    """``basicsr train`` a tiny HATModel, then ``basicsr test`` it on Set5 whole and in 16-pixel tiles."""
    from hat_arch import test as test_cli, train as train_cli

    monkeypatch.chdir(tmp_path)
    network = dict(TINY_HAT, type='HAT')
    set5 = {'name': 'Set5', 'type': 'PairedImageDataset', 'dataroot_gt': str(DATA / 'Set5' / 'GTmod4'),
            'dataroot_lq': str(DATA / 'Set5' / 'LRbicx4'), 'io_backend': {'type': 'disk'}}
    common = {'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0, 'network_g': network}
    train = dict(common, name='tiny', datasets={'train': dict(
        set5, gt_size=32, use_hflip=True, use_rot=True, num_worker_per_gpu=0, batch_size_per_gpu=1,
        dataset_enlarge_ratio=1)}, path={'pretrain_network_g': None, 'resume_state': None}, train={
        'optim_g': {'type': 'Adam', 'lr': 2e-4}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10],
                                                               'gamma': 0.5},
        'total_iter': 2, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        logger={'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False})
    (tmp_path / 'train.yml').write_text(json.dumps(train))  # JSON is YAML
    assert train_cli.main(['-opt', 'train.yml']) == 0
    psnr = {}
    for name, tile in (('whole', None), ('tiled', {'tile_size': 16, 'tile_pad': 8})):
        test = dict(common, name=name, datasets={'test_1': set5},
                    path={'pretrain_network_g': 'experiments/tiny/models/net_g_latest.pth'},
                    val={'save_img': True, 'suffix': None, 'metrics': {'psnr': dict(PSNR)}},
                    **({'tile': tile} if tile else {}))
        (tmp_path / f'{name}.yml').write_text(json.dumps(test))
        assert test_cli.main(['-opt', f'{name}.yml']) == 0
        saved = sorted(p.name for p in (tmp_path / 'results' / name / 'visualization' / 'Set5').iterdir())
        assert saved == [f'{image}_{name}.png' for image in ('baby', 'bird', 'butterfly', 'head', 'woman')]
        psnr[name] = json.loads((tmp_path / 'results' / name / 'metrics.json').read_text())['Set5']['psnr']
    assert abs(psnr['tiled'] - psnr['whole']) < 0.05
