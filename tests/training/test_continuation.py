"""Kill -9 right after a checkpoint, then --auto_resume: the run ends with the weights of an uninterrupted run."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hat_arch.train import main
from tests.training.tiny import SET5, one_thread, read_log, subprocess_env, tiny_options, write_options

# Runs `basicsr train` in this process, but SIGKILLs it the moment training_states/4.state is complete on disk.
KILLED_AFTER_4 = '''
import os, signal, sys
from hat_arch.train import main
from hat_arch.training import saves

atomic_save = saves.atomic_save

def save_then_die(obj, path):
    atomic_save(obj, path)
    if os.path.basename(path) == '4.state':
        os.kill(os.getpid(), signal.SIGKILL)

saves.atomic_save = save_then_die
sys.exit(main(sys.argv[1:]))
'''


def one_image_set(folder: Path) -> dict:
    """A one-image validation set (Set5's butterfly), so that validating is quick."""
    for sub in ('GTmod4', 'LRbicx4'):
        (folder / sub).mkdir(parents=True)
        shutil.copy(SET5 / sub / 'butterfly.png', folder / sub / 'butterfly.png')
    return dict(name='butterfly', type='PairedImageDataset', dataroot_gt=str(folder / 'GTmod4'),
                dataroot_lq=str(folder / 'LRbicx4'), io_backend={'type': 'disk'})


def options(name: str, val_set: dict) -> dict:
    # 10 samples per epoch (ratio 2) in batches of 2: iteration 4 is mid-epoch 0, iteration 7 in epoch 1.
    opt = tiny_options(name, total_iter=7, save_every=2, validate_every=4)
    opt['datasets']['train']['dataset_enlarge_ratio'] = 2
    opt['datasets']['val'] = val_set
    return opt


def load_all(experiment: Path) -> dict[str, dict]:
    files = sorted(experiment.rglob('*.pth')) + sorted(experiment.rglob('*.state'))
    return {p.name: torch.load(p, map_location='cpu', weights_only=True) for p in files}


@pytest.mark.slow  # trains
def test_kill_then_auto_resume_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    val_set = one_image_set(tmp_path / 'val')
    monkeypatch.chdir(tmp_path)
    with one_thread():
        assert main(['-opt', str(write_options(tmp_path, options('straight', val_set), 'straight.yml'))]) == 0

    resumed_yml = write_options(tmp_path, options('resumed', val_set), 'resumed.yml')
    killed = subprocess.run([sys.executable, '-c', KILLED_AFTER_4, '-opt', str(resumed_yml)], cwd=tmp_path,
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    experiment = tmp_path / 'experiments' / 'resumed'
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['2.state', '4.state']
    # As if a second kill had hit the save of iteration 6: a torn state, a torn network file, a temporary file.
    (experiment / 'training_states' / '6.state').write_bytes(b'PK\x03\x04 torn')
    (experiment / 'models' / 'net_g_6.pth').write_bytes(b'PK\x03\x04 torn')
    (experiment / 'models' / '.net_g_6.pth.1a2b3c4d.hat-partial').write_bytes(b'partial')

    with one_thread():
        assert main(['-opt', str(resumed_yml), '--auto_resume']) == 0
    log = read_log(experiment)
    assert 'Skipping incomplete checkpoint' in log and 'Resuming training from epoch: 0, iter: 4.' in log
    assert 'Removed .net_g_6.pth.1a2b3c4d.hat-partial' in log
    assert 'psnr' in log

    straight = load_all(tmp_path / 'experiments' / 'straight')
    resumed = load_all(experiment)  # every .pth and .state loads with weights_only=True
    assert set(resumed) == set(straight) == {'net_g_2.pth', 'net_g_4.pth', 'net_g_6.pth', 'net_g_latest.pth',
                                             '2.state', '4.state', '6.state'}
    for key in ('params', 'params_ema'):
        final, start = straight['net_g_latest.pth'][key], straight['net_g_4.pth'][key]
        assert any(not torch.equal(final[k], start[k]) for k in final)  # iterations 5-7 did change the weights
        for name, value in final.items():
            torch.testing.assert_close(resumed['net_g_latest.pth'][key][name], value, atol=1e-6, rtol=0)
    assert resumed['6.state']['samples_done'] == straight['6.state']['samples_done'] == 6 * 2 - 10
