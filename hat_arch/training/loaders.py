"""The train and validation dataloaders of an option file, from BasicSR's ``build_dataset`` / ``build_dataloader``.

As in BasicSR's ``create_train_val_dataloader``, except that the train sampler is a :class:`ResumableSampler` and the
log states the world size and the batch size per process.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from basicsr.data import build_dataloader, build_dataset
from torch.utils.data import DataLoader

from hat_arch.errors import HatError
from hat_arch.training.sampler import ResumableSampler


@dataclass
class TrainData:
    loader: DataLoader
    sampler: ResumableSampler
    batch_size: int  # per process
    iters_per_epoch: int
    val_loaders: list[DataLoader]


def create_dataloaders(opt: dict, logger: logging.Logger) -> TrainData:
    """Train loader (phase ``train``) and validation loaders (phases ``val*``) of ``opt['datasets']``."""
    val_loaders = []
    for phase, dataset_opt in opt['datasets'].items():
        if phase.split('_')[0] == 'val':
            val_set = build_dataset(dataset_opt)
            val_loaders.append(build_dataloader(val_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                                sampler=None, seed=opt['manual_seed']))
            logger.info(f'Number of val images/folders in {dataset_opt["name"]}: {len(val_set)}')
    dataset_opt = opt['datasets']['train']
    ratio = dataset_opt.get('dataset_enlarge_ratio', 1)
    train_set = build_dataset(dataset_opt)
    sampler = ResumableSampler(train_set, opt['world_size'], opt['rank'], ratio)
    loader = build_dataloader(train_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'], sampler=sampler,
                              seed=opt['manual_seed'])
    iters_per_epoch = sampler.num_samples // loader.batch_size  # the loader drops the last partial batch
    if iters_per_epoch == 0:
        raise HatError(f'datasets: train: each process gets {sampler.num_samples} samples per epoch, fewer than one '
                       f'batch of {loader.batch_size}: lower batch_size_per_gpu or raise dataset_enlarge_ratio')
    total_iters = int(opt['train']['total_iter'])
    logger.info('Training statistics:'
                f'\n\tNumber of train images: {len(train_set)}'
                f'\n\tDataset enlarge ratio: {ratio}'
                f'\n\tWorld size: {opt["world_size"]} process(es)'
                f'\n\tBatch size per process: {loader.batch_size} (total {loader.batch_size * opt["world_size"]})'
                f'\n\tIterations per epoch: {iters_per_epoch}'
                f'\n\tTotal epochs: {-(-total_iters // iters_per_epoch)}; iters: {total_iters}.')
    return TrainData(loader, sampler, loader.batch_size, iters_per_epoch, val_loaders)
