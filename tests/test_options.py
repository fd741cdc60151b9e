"""Every option file under options/ parses with BasicSR, names registered types and builds its networks."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from unittest import mock

import pytest
import torch
import basicsr.data  # noqa: F401  (registers BasicSR's own datasets, models and losses, as the launchers do)
import basicsr.losses  # noqa: F401
import basicsr.models  # noqa: F401
import yaml
from basicsr.archs import build_network
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY

from hat_arch.archs.config import HATConfig
from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import detect_config, read_state_dict
from hat_arch.data.checks import check_dataset_options
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, SHIPPED_MODEL_PATH
from tests.conftest import GOLDEN, ROOT

OPTIONS = ROOT / 'options'
ALL = sorted(OPTIONS.rglob('*.yml'))
REFERENCE_TRAIN = [
    'train_HAT-S_SRx2_from_scratch', 'train_HAT-S_SRx3_from_scratch', 'train_HAT-S_SRx4_finetune_from_SRx2',
    'train_HAT_SRx2_from_scratch', 'train_HAT_SRx3_from_scratch', 'train_HAT_SRx4_finetune_from_SRx2',
    *[f'train_{m}_SRx{s}_{kind}' for m in ('HAT', 'HAT-L') for s in (2, 3, 4)
      for kind in ('ImageNet_from_scratch', 'finetune_from_ImageNet_pretrain')],
    'train_Real_HAT_SRx4_mse_model', 'train_Real_HAT_GAN_SRx4_finetune_from_mse_model',
]
REFERENCE_TEST = [
    *[f'{m}_SRx{s}' for m in ('HAT-S', 'HAT') for s in (2, 3, 4)],
    *[f'{m}_SRx{s}_ImageNet-pretrain' for m in ('HAT', 'HAT-L') for s in (2, 3, 4)],
    'HAT_SRx4_ImageNet-LR', 'HAT_GAN_Real_SRx4', 'HAT_tile_example',
]
RELEASED = json.loads((GOLDEN / 'released_state_dict_shapes.json').read_text())


def registered(registry, name: str) -> bool:
    """Whether ``build_*`` finds ``name`` (BasicSR also accepts its own classes registered with a '_basicsr' suffix)."""
    try:
        registry.get(name)
    except KeyError:
        return False
    return True


def load(path: Path) -> dict:
    with open(path) as f:
        return yaml.load(f, Loader=ordered_yaml()[0])


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_reference_recipes_and_entry_point_are_present():
    names = {p.stem for p in (OPTIONS / 'train').glob('*.yml')}
    assert set(REFERENCE_TRAIN) <= names, set(REFERENCE_TRAIN) - names
    names = {p.stem for p in (OPTIONS / 'test').glob('*.yml')}
    assert set(REFERENCE_TEST) <= names, set(REFERENCE_TEST) - names
    assert (OPTIONS / 'train_HAT_SRx4.yml').is_file()


@pytest.mark.parametrize('path', ALL, ids=rel)
def test_option_file_names_registered_types_and_builds(path):
    opt = load(path)
    assert registered(MODEL_REGISTRY, opt['model_type'])
    for name, dataset in opt['datasets'].items():
        assert registered(DATASET_REGISTRY, dataset['type']), f'{name}: {dataset["type"]}'
        for key, value in dataset.items():
            if key.startswith('dataroot') or key.startswith('meta_info'):
                assert str(value).startswith('datasets/'), f'{name}: {key}: {value} is not under datasets/'
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt'):
            assert registered(LOSS_REGISTRY, value['type']), f'train: {key}: {value["type"]}'
    nets = {k: v for k, v in opt.items() if k.startswith('network_')}
    assert 'network_g' in nets
    for key, net_opt in nets.items():
        assert registered(ARCH_REGISTRY, net_opt['type']), f'{key}: {net_opt["type"]}'
        assert parameter_count(json.dumps(net_opt, sort_keys=True)) > 0
    if opt['network_g']['type'] == 'HAT':
        assert opt['network_g']['upscale'] == opt['scale']


@functools.lru_cache(maxsize=None)
def parameter_count(net_opt: str) -> int:
    """Build a network from its options on the meta device (shapes only, no memory) and count its parameters."""
    with torch.device('meta'), mock.patch.object(HAT, '_init_weights', staticmethod(lambda m: None)):
        net = build_network(json.loads(net_opt))  # (weight init is slow on meta tensors and decides no shape)
    return sum(p.numel() for p in net.parameters())


def hat_recipes():
    """The recipes of the published bicubic models (not the demo, the shipped model's or the real-world ones)."""
    return [p for p in ALL if p.parent.name != 'demo' and 'Real' not in p.stem and SHIPPED_MODEL_NAME not in p.stem]


@pytest.mark.parametrize('path', hat_recipes(), ids=rel)
def test_hat_recipes_use_the_released_configurations(path):
    opt = load(path)
    stem = path.stem.removeprefix('train_')
    model = stem.split('_SRx')[0] if '_SRx' in stem else 'HAT'  # HAT_tile_example
    released = RELEASED[f'{model}_SRx{opt["scale"]}']['config']
    net = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    assert net == released
    for metric in (opt['val'].get('metrics') or {}).values():
        assert metric['crop_border'] == opt['scale'] and metric['test_y_channel'] is True


@pytest.mark.parametrize('path', [p for p in hat_recipes() if p.stem.startswith('train')], ids=rel)
def test_training_recipes_use_the_published_schedule(path):
    opt = load(path)
    train, data = opt['train'], opt['datasets']['train']
    assert data['batch_size_per_gpu'] == 4 and data['gt_size'] == 64 * opt['scale']
    assert train['optim_g'] == {'type': 'Adam', 'lr': train['optim_g']['lr'], 'weight_decay': 0, 'betas': [0.9, 0.99]}
    assert train['ema_decay'] == 0.999 and train['pixel_opt']['type'] == 'L1Loss'
    finetune = 'finetune' in path.stem
    lr = {'SRx2': 1e-4, 'ImageNet_pretrain': 1e-5}.get(path.stem.split('finetune_from_')[-1], 2e-4)
    assert train['optim_g']['lr'] == (lr if finetune else 2e-4)
    total = 800000 if 'ImageNet_from_scratch' in path.stem else 250000 if finetune else 500000
    milestones = {800000: [300000, 500000, 650000, 700000, 750000], 500000: [250000, 400000, 450000, 475000],
                  250000: [125000, 200000, 225000, 240000]}[total]  # the published schedules (README table)
    assert train['total_iter'] == total
    assert train['scheduler'] == {'type': 'MultiStepLR', 'milestones': milestones, 'gamma': 0.5}
    if finetune:
        assert Path(opt['path']['pretrain_network_g']).parts[0] == 'experiments'
    # the x2 -> x4 fine-tune loads a checkpoint whose upsampler differs: it must not be strict
    assert opt['path']['strict_load_g'] is (not path.stem.endswith('finetune_from_SRx2'))


@pytest.mark.parametrize('path', [p for p in ALL if p.stem.startswith('train')], ids=rel)
def test_training_recipes_leave_the_backend_to_the_device(path):
    # The reference recipes said 'backend: nccl', which stops a multi-process run on CPUs; left out, it is nccl on
    # GPUs and gloo on CPU.
    assert 'backend' not in (load(path).get('dist_params') or {})


def test_no_reference_internal_paths():
    for path in ALL:
        text = path.read_text()
        assert 'hct/' not in text and '563_train' not in text, rel(path)


def test_demo_recipes_find_their_bundled_data(monkeypatch):
    monkeypatch.chdir(ROOT)
    demo = sorted((OPTIONS / 'demo').glob('*.yml'))
    assert demo
    for path in demo:
        opt = load(path)
        opt['path'] = {}  # the test recipe's checkpoint is made by the training recipe
        check_dataset_options(opt)


def test_the_shipped_models_recipes_build_the_network_of_its_file(monkeypatch):
    """The shipped weights came from the training recipe and are tested by the test recipe: both must build exactly
    the network the file holds (the settings no tensor shows included), on the bundled data alone."""
    monkeypatch.chdir(ROOT)
    train = load(OPTIONS / 'train' / f'train_{SHIPPED_MODEL_NAME}.yml')
    test = load(OPTIONS / 'test' / f'{SHIPPED_MODEL_NAME}.yml')
    detected = detect_config(read_state_dict(SHIPPED_MODEL_PATH)).replace(img_size=train['network_g']['img_size'])
    for opt in (train, test):
        check_dataset_options(opt)
        net = {k: v for k, v in opt['network_g'].items() if k not in ('type', 'drop_path_rate')}
        assert HATConfig.from_options(net) == detected
    assert ROOT / test['path']['pretrain_network_g'] == SHIPPED_MODEL_PATH
    assert train['datasets']['train']['dataroot_gt'] == 'datasets/T91/HR'  # never trained on Set5 or Set14


def test_demo_test_recipe_builds_the_network_the_demo_trains():
    """conv_scale, window_size, overlap_ratio and img_range are no state-dict keys: a test recipe that differed from
    the training recipe in one of them would load the trained weights into another network without a word."""
    train = load(OPTIONS / 'demo' / 'train_HAT_demo_SRx4.yml')
    test = load(OPTIONS / 'demo' / 'test_HAT_demo_SRx4.yml')
    training_only = {'drop_path_rate'}
    assert {k: v for k, v in train['network_g'].items() if k not in training_only} == dict(test['network_g'])
    assert test['path']['pretrain_network_g'] == f'experiments/{train["name"]}/models/net_g_latest.pth'
    ema = (train['train'].get('ema_decay') or 0) > 0
    assert test['path']['param_key_g'] == ('params_ema' if ema else 'params')
