"""Real-HAT: the shipped recipes, shrunk, train on the CPU; the on-the-fly degradations; the start-up checks."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils import set_random_seed
from torch.nn import functional as F
from torch.utils.data import default_collate

from hat_arch.errors import HatError
from hat_arch.models.degradation import check_real_options, check_vgg_weights
from tests.conftest import DATA, ROOT, TINY_HAT

MSE_RECIPE = ROOT / 'options/train/train_Real_HAT_SRx4_mse_model.yml'
GAN_RECIPE = ROOT / 'options/train/train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml'
SET5 = DATA / 'Set5'
GT_SIZE, BATCH = 64, 2


def shrunk(recipe: Path, tmp_path: Path) -> dict:
    """The shipped recipe on Set5 GT: tiny HAT, gt_size 64, batch 2, CPU, no VGG loss, no pretrained network."""
    opt = yaml.safe_load(recipe.read_text())
    meta_info = tmp_path / 'meta_info_Set5.txt'
    meta_info.write_text(''.join(f'{name}\n' for name in sorted(os.listdir(SET5 / 'GTmod4'))))
    train = opt['datasets']['train']
    train.update(dataroot_gt=str(SET5 / 'GTmod4'), meta_info=str(meta_info), gt_size=GT_SIZE,
                 batch_size_per_gpu=BATCH, num_worker_per_gpu=0)
    opt.update(num_gpu=0, gt_size=GT_SIZE, queue_size=2 * BATCH)
    opt['network_g'].update(TINY_HAT)
    if 'network_d' in opt:
        opt['network_d']['num_feat'] = 16
    opt['path']['pretrain_network_g'] = None
    opt['train'].pop('perceptual_opt', None)
    opt['train']['total_iter'] = 2
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    return opt


def in_process(opt: dict) -> dict:
    """What BasicSR's parse_options adds for a single-process training run."""
    opt = copy.deepcopy(opt)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    for phase, dataset in opt['datasets'].items():
        dataset.update(phase=phase, scale=opt['scale'])
    return opt


def basicsr_train(opt: dict, tmp_path: Path) -> Path:
    """Run ``basicsr train`` on ``opt`` in ``tmp_path``; the experiment's folder."""
    option_file = tmp_path / 'options.yml'
    option_file.write_text(yaml.safe_dump(opt))
    launcher = shutil.which('basicsr', path=os.path.dirname(sys.executable)) or shutil.which('basicsr')
    run = subprocess.run([launcher, 'train', '-opt', str(option_file)], cwd=tmp_path, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return tmp_path / 'experiments' / opt['name']


@pytest.mark.slow  # trains
def test_mse_recipe_trains_and_validates_with_tiles(tmp_path):
    opt = shrunk(MSE_RECIPE, tmp_path)
    (tmp_path / 'val.txt').write_text('head.png\n')  # one 70x70 LR image keeps the CPU test short
    opt['datasets']['val'] = dict(name='Set5', type='PairedImageDataset', dataroot_gt=str(SET5 / 'GTmod4'),
                                  dataroot_lq=str(SET5 / 'LRbicx4'), meta_info_file=str(tmp_path / 'val.txt'),
                                  io_backend=dict(type='disk'))
    opt['val'] = dict(val_freq=2, save_img=True, pbar=False,
                      metrics=dict(psnr=dict(type='calculate_psnr', crop_border=4, test_y_channel=True)))
    opt['tile'] = dict(tile_size=32, tile_pad=8)
    experiment = basicsr_train(opt, tmp_path)

    checkpoint = torch.load(experiment / 'models/net_g_2.pth', weights_only=True)
    assert set(checkpoint) == {'params', 'params_ema'}  # EMA on
    assert checkpoint['params']['conv_first.weight'].shape == (TINY_HAT['embed_dim'], 3, 3, 3)
    saved = experiment / 'visualization/head/head_2.png'  # validated through HATModel's tiled test()
    assert cv2.imread(str(saved)).shape == (280, 280, 3)
    log = next(experiment.glob('train_*.log')).read_text()
    assert 'Validation Set5' in log and '# psnr:' in log


@pytest.mark.slow  # trains
def test_gan_recipe_trains_and_saves_g_and_d(tmp_path):
    experiment = basicsr_train(shrunk(GAN_RECIPE, tmp_path), tmp_path)

    net_g = torch.load(experiment / 'models/net_g_2.pth', weights_only=True)
    net_d = torch.load(experiment / 'models/net_d_2.pth', weights_only=True)['params']
    assert set(net_g) == {'params', 'params_ema'}
    assert net_d['conv0.weight'].shape == (16, 3, 3, 3)  # UNetDiscriminatorSN, num_feat 16
    assert any(key.endswith('weight_orig') for key in net_d)  # spectral norm
    log = next(experiment.glob('train_*.log')).read_text()
    for loss in ('l_g_pix', 'l_g_gan', 'l_d_real', 'l_d_fake'):
        assert loss in log


def degrade(opt: dict, seed: int, feeds: int) -> tuple[object, list[tuple[torch.Tensor, torch.Tensor]]]:
    """A fresh RealHATMSEModel fed ``feeds`` batches of Set5 GT after seeding every generator: (model, [(lq, gt)])."""
    set_random_seed(seed)
    dataset = build_dataset(copy.deepcopy(opt['datasets']['train']))
    model = build_model(copy.deepcopy(opt))
    pairs = []
    for i in range(feeds):
        model.feed_data(default_collate([dataset[(BATCH * i + j) % len(dataset)] for j in range(BATCH)]))
        pairs.append((model.lq.clone(), model.gt.clone()))
    return model, pairs


def test_degradations_sizes_range_pool_and_seed(tmp_path):
    opt = in_process(shrunk(MSE_RECIPE, tmp_path))
    opt['gt_usm'] = False  # USM at 400x400 is the slow part on a CPU; the GAN recipe's run covers it
    model, pairs = degrade(opt, seed=1, feeds=3)

    assert model.queue_lr.device == model.device == torch.device('cpu')
    for lq, gt in pairs:
        assert lq.shape == (BATCH, 3, GT_SIZE // 4, GT_SIZE // 4) and gt.shape == (BATCH, 3, GT_SIZE, GT_SIZE)
        assert lq.min() >= 0 and lq.max() <= 1 and gt.min() >= 0 and gt.max() <= 1
        torch.testing.assert_close(lq * 255, (lq * 255).round(), atol=1e-3, rtol=0)  # 8-bit values
    # Degraded: far from a plain bicubic downscale of the GT (blur, noise, JPEG, resizes).
    lq, gt = pairs[0]
    assert (lq - F.interpolate(gt, scale_factor=0.25, mode='bicubic', antialias=True)).abs().mean() > 0.01
    # The pool holds 2 batches; the third batch comes out of it: pairs fed before, still paired.
    pooled = [(lq_i, gt_i) for lq, gt in pairs[:2] for lq_i, gt_i in zip(lq, gt)]
    for lq_i, gt_i in zip(*pairs[2]):
        assert any(torch.equal(lq_i, lq_p) and torch.equal(gt_i, gt_p) for lq_p, gt_p in pooled)

    _, again = degrade(opt, seed=1, feeds=3)
    for (lq, gt), (lq_again, gt_again) in zip(pairs, again):
        assert torch.equal(lq, lq_again) and torch.equal(gt, gt_again)
    _, other = degrade(opt, seed=2, feeds=1)
    assert not torch.equal(other[0][0], pairs[0][0])


def test_missing_vgg_weights_fail_at_start_in_one_line(tmp_path, monkeypatch):
    hub = tmp_path / 'hub'
    monkeypatch.chdir(tmp_path)  # no experiments/pretrained_models/vgg19-dcbb9e9d.pth here
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(hub))

    def no_network(*args, **kwargs):
        raise AssertionError('tried to download')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_network)
    opt = in_process(shrunk(GAN_RECIPE, tmp_path))
    opt['train']['perceptual_opt'] = yaml.safe_load(GAN_RECIPE.read_text())['train']['perceptual_opt']

    with pytest.raises(HatError) as error:
        build_model(opt)
    message = str(error.value)
    assert '\n' not in message
    assert str(hub / 'checkpoints' / 'vgg19-dcbb9e9d.pth') in message
    assert 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth' in message

    (hub / 'checkpoints').mkdir(parents=True)
    (hub / 'checkpoints' / 'vgg19-dcbb9e9d.pth').touch()
    check_vgg_weights(opt['train']['perceptual_opt'])  # found in torchvision's cache: no error
    (hub / 'checkpoints' / 'vgg19-dcbb9e9d.pth').unlink()
    (tmp_path / 'experiments/pretrained_models').mkdir(parents=True)
    (tmp_path / 'experiments/pretrained_models/vgg19-dcbb9e9d.pth').touch()
    check_vgg_weights(opt['train']['perceptual_opt'])  # found where BasicSR looks first: no error


@pytest.mark.parametrize('recipe, change, key', [
    (MSE_RECIPE, lambda opt: opt.pop('gt_usm'), 'gt_usm'),
    (GAN_RECIPE, lambda opt: opt.pop('jpeg_range2'), 'jpeg_range2'),
    (GAN_RECIPE, lambda opt: opt.update(queue_size=5), 'queue_size'),
    (MSE_RECIPE, lambda opt: opt['train'].update(perceptual_opt={'vgg_type': 'vgg99'}), 'vgg99'),
    # Values that failed at the first iteration, each with its own traceback:
    (MSE_RECIPE, lambda opt: opt.update(resize_prob=[0.2, 0.7]), r'resize_prob must be the weights \[up, down, keep\]'),
    (GAN_RECIPE, lambda opt: opt.update(jpeg_range=30), r'jpeg_range must be a range \[low, high\], got 30'),
    (GAN_RECIPE, lambda opt: opt.update(gray_noise_prob2='0.4'), "gray_noise_prob2 must be a probability"),
    (MSE_RECIPE, lambda opt: opt['datasets']['train'].update(kernel_list=['isoo'] * 6),
     r"datasets: train: kernel_list: unknown kernel 'isoo' \(did you mean 'iso'\?\)"),
    (MSE_RECIPE, lambda opt: opt['datasets']['train'].update(kernel_prob2=[1.0]),
     r'kernel_prob2 must give one weight per kernel of kernel_list2 \(6\), got \[1.0\]'),
])
def test_bad_options_are_named(tmp_path, recipe, change, key):
    opt = in_process(shrunk(recipe, tmp_path))
    change(opt)
    with pytest.raises(HatError, match=key):
        check_real_options(opt, ('gt_usm',) if recipe == MSE_RECIPE else ('l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm'))


def test_gan_model_refuses_amp(tmp_path):
    opt = in_process(shrunk(GAN_RECIPE, tmp_path))
    opt['train']['amp'] = 'bf16'
    with pytest.raises(HatError, match='amp'):
        build_model(opt)
