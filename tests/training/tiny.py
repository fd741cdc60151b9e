"""A tiny training run for the launcher and training tests: a HAT of about 20k parameters on 32px Set5 crops.

Each process is limited to one thread: the test machine has 2 shared cores, and OpenMP threads waiting on each other
make a tiny step hundreds of times slower there.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import torch
import yaml

from tests.conftest import DATA, TINY_HAT

SET5 = DATA / 'Set5'
NETWORK = dict(TINY_HAT, type='HAT', depths=[1], num_heads=[2], embed_dim=16)
ONE_THREAD = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}


def tiny_options(name: str = 'tiny', total_iter: int = 2, save_every: int = 2, validate_every: int | None = 2,
                 **top_level) -> dict:
    """A complete option file for ``basicsr train`` (HATModel, fixed seed, no dataloader workers)."""
    paired = dict(type='PairedImageDataset', dataroot_gt=str(SET5 / 'GTmod4'), dataroot_lq=str(SET5 / 'LRbicx4'),
                  io_backend={'type': 'disk'})
    opt = {
        'name': name, 'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 10,
        'datasets': {
            'train': dict(paired, name='Set5', gt_size=32, use_hflip=True, use_rot=True, num_worker_per_gpu=0,
                          batch_size_per_gpu=2),
            'val': dict(paired, name='Set5'),
        },
        'network_g': NETWORK,
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0.9,
            'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3], 'gamma': 0.5},
            'total_iter': total_iter, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'},
        },
        'val': {'val_freq': validate_every or 10**9, 'save_img': False, 'pbar': False,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_every, 'use_tb_logger': False},
    }
    if validate_every is None:
        del opt['datasets']['val'], opt['val']
    opt.update(top_level)
    return opt


def write_options(folder: Path, opt: dict, file_name: str = 'tiny.yml') -> Path:
    path = Path(folder) / file_name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def subprocess_env() -> dict:
    """The environment for a child ``basicsr`` / ``python``: one thread, this checkout importable."""
    root = str(Path(__file__).resolve().parents[2])
    return {**os.environ, **ONE_THREAD, 'PYTHONPATH': os.pathsep.join([root, os.environ.get('PYTHONPATH', '')])}


def console_script(name: str) -> str:
    """The console script installed beside this interpreter (the venv's ``basicsr``, ``torchrun``)."""
    return str(Path(sys.executable).with_name(name))


def read_log(experiment: Path) -> str:
    return '\n'.join(p.read_text() for p in sorted(Path(experiment).glob('train_*.log')))


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run in-process training on one thread (see the module docstring), restoring the count afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def disk_full_after(saves: int) -> Callable:
    """A stand-in for ``torch.save`` that writes the first ``saves`` files and then fails as a full disk does."""
    real_save, calls = torch.save, []

    def save(obj, file):
        calls.append(file)
        if len(calls) > saves:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, file)

    return save
