"""training/loaders.py: the train loader (with a ResumableSampler) and the validation loaders of an option file."""
from __future__ import annotations

import copy
import logging

import pytest

from hat_arch.errors import HatError
from hat_arch.training.loaders import create_dataloaders
from hat_arch.training.sampler import ResumableSampler
from tests.training.tiny import tiny_options


def parsed(batch_size: int = 2, ratio: int = 1, world_size: int = 1) -> dict:
    """The tiny options as BasicSR's parse_options leaves them (phase and scale on each dataset)."""
    opt = copy.deepcopy(tiny_options())
    opt['datasets']['val_2'] = dict(opt['datasets']['val'], name='Set5_again')
    for phase, dataset in opt['datasets'].items():
        dataset.update(phase=phase.split('_')[0], scale=opt['scale'])
    opt['datasets']['train'].update(batch_size_per_gpu=batch_size, dataset_enlarge_ratio=ratio)
    opt.update(dist=False, rank=0, world_size=world_size)
    return opt


def test_train_and_validation_loaders_of_the_options(caplog):
    with caplog.at_level(logging.INFO):
        data = create_dataloaders(parsed(batch_size=2, ratio=3), logging.getLogger('test_loaders'))
    assert isinstance(data.sampler, ResumableSampler) and data.loader.sampler is data.sampler
    assert data.batch_size == data.loader.batch_size == 2
    assert data.iters_per_epoch == 15 // 2 == len(data.loader)  # Set5 enlarged 3 times; the last partial batch dropped
    assert [loader.dataset.opt['name'] for loader in data.val_loaders] == ['Set5', 'Set5_again']
    assert all(len(loader.dataset) == 5 and loader.batch_size == 1 for loader in data.val_loaders)
    batch = next(iter(data.loader))
    assert batch['gt'].shape == (2, 3, 32, 32) and batch['lq'].shape == (2, 3, 8, 8)
    assert 'Batch size per process: 2 (total 2)' in caplog.text and 'Total epochs: 1; iters: 2.' in caplog.text
    assert 'Number of val images/folders in Set5_again: 5' in caplog.text


def test_each_process_gets_its_share_of_the_epoch(caplog):
    with caplog.at_level(logging.INFO):
        data = create_dataloaders(parsed(batch_size=2, world_size=2), logging.getLogger('test_loaders'))
    assert data.sampler.num_samples == 3 and data.iters_per_epoch == 1  # ceil(5 / 2) samples, one whole batch
    assert 'World size: 2 process(es)' in caplog.text and 'Batch size per process: 2 (total 4)' in caplog.text


def test_fewer_samples_than_one_batch_is_a_one_line_error():
    with pytest.raises(HatError, match=r'^datasets: train: each process gets 5 samples per epoch, fewer than one batch '
                       r'of 8: lower batch_size_per_gpu or raise dataset_enlarge_ratio$'):
        create_dataloaders(parsed(batch_size=8), logging.getLogger('test_loaders'))
