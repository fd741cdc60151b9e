"""The model shipped inside the package (hat_arch/weights): its file, its outputs (a golden patch, so the file cannot
change silently), and every command that uses it when no checkpoint is named."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import hat_arch
from hat_arch.checkpoint import describe, load_model, read_state_dict
from hat_arch.cli import hat_sr_main
from hat_arch.shipped_model import (SHIPPED_MODEL_NAME, SHIPPED_MODEL_NOTE, SHIPPED_MODEL_PATH,
                                    checkpoint_or_shipped, ship_weights)
from tests.conftest import DATA, GOLDEN, ROOT

PATCH_INPUT = DATA / 'Set5' / 'LRbicx4' / 'baby.png'
GOLDEN_PATCH = GOLDEN / 'shipped_model_patch.npy'  # made by make_golden_patch() below


def patch_input() -> torch.Tensor:
    """A fixed 32x40 LR crop of Set5's baby, as (1, 3, h, w) RGB in [0, 1]."""
    bgr = cv2.imread(str(PATCH_INPUT))[40:72, 24:64]
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1], dtype=np.float32) / 255).permute(2, 0, 1)[None]


def make_golden_patch() -> None:  # run by hand when the shipped weights change on purpose
    with torch.no_grad():
        np.save(GOLDEN_PATCH, load_model(device='cpu')(patch_input())[0].numpy())


def test_the_file_is_small_tensors_only_and_detected_as_the_recipe_builds_it():
    assert SHIPPED_MODEL_PATH.stat().st_size <= 5 * 2**20
    header_size = int.from_bytes(SHIPPED_MODEL_PATH.read_bytes()[:8], 'little')  # safetensors: a JSON header first
    header = json.loads(SHIPPED_MODEL_PATH.read_bytes()[8:8 + header_size])
    assert header['__metadata__']['name'] == SHIPPED_MODEL_NAME
    info = describe(SHIPPED_MODEL_PATH)
    assert (info.scale, info.in_chans, info.window_size) == (4, 3, 8)
    assert info.name == SHIPPED_MODEL_NAME
    assert (info.config.embed_dim, info.config.depths, info.config.upsampler) == (32, (2, 2), 'pixelshuffledirect')
    assert 100_000 < info.num_params < 150_000


def test_its_output_on_a_fixed_patch_is_the_stored_golden_one():
    model = load_model(device='cpu')  # no path: the shipped model
    with torch.no_grad():
        out = model(patch_input())[0].numpy()
    assert out.shape == (3, 128, 160)
    np.testing.assert_allclose(out, np.load(GOLDEN_PATCH, allow_pickle=False), rtol=0, atol=1e-5)


def test_hat_sr_upscale_without_a_model_uses_it_and_says_so_once(tmp_path, capsys):
    code = hat_sr_main(['upscale', str(DATA / 'Set5' / 'LRbicx4' / 'bird.png'), str(PATCH_INPUT),
                        '-o', str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count(SHIPPED_MODEL_NOTE) == 1
    out = cv2.imread(str(tmp_path / 'baby.png'))
    assert out.shape == (512, 512, 3)
    expected = hat_arch.upscale(load_model(device='cpu'), cv2.imread(str(PATCH_INPUT)))
    assert np.array_equal(out, expected)


def test_a_named_checkpoint_is_used_instead_and_nothing_is_announced(tmp_path, capsys):
    named = tmp_path / 'mine.safetensors'
    named.write_bytes(SHIPPED_MODEL_PATH.read_bytes())
    assert hat_sr_main(['upscale', str(PATCH_INPUT), '-o', str(tmp_path / 'out'), '-m', str(named)]) == 0
    assert SHIPPED_MODEL_NOTE not in capsys.readouterr().err


def test_its_name_names_it_in_any_command(tmp_path, capsys):
    assert hat_sr_main(['upscale', str(PATCH_INPUT), '-o', str(tmp_path), '-m', SHIPPED_MODEL_NAME]) == 0
    assert SHIPPED_MODEL_NOTE not in capsys.readouterr().err
    assert np.array_equal(cv2.imread(str(tmp_path / 'baby.png')),
                          hat_arch.upscale(load_model(device='cpu'), cv2.imread(str(PATCH_INPUT))))
    assert checkpoint_or_shipped('HAT-S_SRx4') == Path('HAT-S_SRx4')  # no packaged weights: a path, as given


def test_hat_sr_lam_without_a_model_uses_it(tmp_path, capsys):
    figure = tmp_path / 'lam.png'
    code = hat_sr_main(['lam', '-i', str(PATCH_INPUT), '--box', '40,40,16,16', '--steps', '2', '-o', str(figure)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert SHIPPED_MODEL_NOTE in err
    assert json.loads(figure.with_suffix('.json').read_text())['model'] == str(SHIPPED_MODEL_PATH)


@pytest.mark.slow
def test_basicsr_test_with_the_shipped_recipe_reaches_30_db_on_set5(tmp_path):
    """The shipped model's acceptance: Set5 x4 at least 30.0 dB (Y, 4-pixel border), as `basicsr test` reports it
    with the shipped test recipe (run from a scratch folder, the recipe's relative paths made absolute)."""
    recipe = yaml.safe_load((ROOT / 'options' / 'test' / f'{SHIPPED_MODEL_NAME}.yml').read_text())
    for dataset in recipe['datasets'].values():
        dataset['dataroot_gt'], dataset['dataroot_lq'] = (str(ROOT / dataset[key]) for key in ('dataroot_gt',
                                                                                           'dataroot_lq'))
    assert ROOT / recipe['path']['pretrain_network_g'] == SHIPPED_MODEL_PATH
    recipe['path']['pretrain_network_g'] = str(SHIPPED_MODEL_PATH)
    recipe['val']['save_img'] = False
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(recipe))
    run = subprocess.run([sys.executable, '-m', 'hat_arch.test', '-opt', 'test.yml'], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert run.returncode == 0, run.stderr[-2000:]
    metrics = json.loads((tmp_path / 'results' / SHIPPED_MODEL_NAME / 'metrics.json').read_text())
    assert metrics['Set5']['psnr'] >= 30.0
    assert metrics['Set14']['psnr'] > 26.09 + 0.5  # bicubic's 26.09, and a margin


def test_it_is_a_named_model_with_packaged_weights():
    assert hat_arch.list_models(pretrained=True) == [SHIPPED_MODEL_NAME]
    model = hat_arch.create_model(SHIPPED_MODEL_NAME, pretrained=True).eval()
    loaded = load_model(device='cpu')
    assert describe(loaded).name == SHIPPED_MODEL_NAME
    with torch.no_grad():
        assert torch.equal(model(patch_input()), loaded(patch_input()))


def test_shipping_a_training_checkpoint_writes_its_ema_weights_as_tensors_only(tmp_path):
    ema = read_state_dict(SHIPPED_MODEL_PATH)
    torch.save({'params': {k: torch.zeros_like(v) for k, v in ema.items()}, 'params_ema': ema}, tmp_path / 'net.pth')
    target = ship_weights(tmp_path / 'net.pth', tmp_path / 'shipped.safetensors')
    shipped = load_file(target)
    assert shipped.keys() == ema.keys() and all(torch.equal(shipped[k], ema[k]) for k in ema)
    torch.save({'params': {'conv.weight': torch.zeros(1)}}, tmp_path / 'other.pth')
    with pytest.raises(hat_arch.HatError, match='is not a HAT checkpoint'):
        ship_weights(tmp_path / 'other.pth', tmp_path / 'other.safetensors')
    assert not (tmp_path / 'other.safetensors').exists()
