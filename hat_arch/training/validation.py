"""Validation during training and in ``basicsr test``, spread over the processes when there are several.

BasicSR's ``SRModel.dist_validation`` runs everything on rank 0 while the other processes wait. During training, for
SRModel and its subclasses (HATModel, Real-ESRGAN models, ...) each process here validates every ``world_size``-th
image with the model's own ``nondist_validation``, and the per-image metric averages are combined exactly; rank 0
logs them. Models with their own ``dist_validation`` (video models) use it; ``basicsr test`` keeps SRModel's rank-0
validation (a model may record per-set test results, e.g. HATModel's metrics.json). Validation never changes the
random states training continues from, and runs on the networks without their DDP wrapper (whose forward would
start collectives on one process only).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from basicsr.models.sr_model import SRModel
from basicsr.utils.dist_util import get_dist_info
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from hat_arch.training.distributed import is_distributed, sum_over_processes
from hat_arch.training.rng import preserved_rng


def validate(model, loaders: list[DataLoader], current_iter, tb_logger, save_img: bool) -> None:
    """Validate ``model`` on each loader; metrics are logged (and sent to ``tb_logger``) once."""
    with preserved_rng(), bare_networks(model):
        for loader in loaders:
            if is_distributed() and model.is_train and type(model).dist_validation is SRModel.dist_validation:
                _sharded_validation(model, loader, current_iter, tb_logger, save_img)
            else:
                model.validation(loader, current_iter, tb_logger, save_img)


@contextmanager
def bare_networks(model) -> Iterator[None]:
    """Within the block, the model's DistributedDataParallel networks are replaced by the networks they wrap."""
    wrapped = {name: net for name, net in vars(model).items() if isinstance(net, DistributedDataParallel)}
    for name, net in wrapped.items():
        setattr(model, name, net.module)
    try:
        yield
    finally:
        for name, net in wrapped.items():
            setattr(model, name, net)


def _sharded_validation(model: SRModel, loader: DataLoader, current_iter, tb_logger, save_img: bool) -> None:
    rank, world_size = get_dist_info()
    dataset = loader.dataset
    indices = range(rank, len(dataset), world_size)
    shard = DataLoader(dataset, batch_size=1, sampler=indices, num_workers=0)
    with _metrics_not_recorded(model):
        if len(indices):
            model.nondist_validation(shard, current_iter, None, save_img)
    metrics = list((model.opt['val'].get('metrics') or {}).keys())
    if not metrics:
        return
    # nondist_validation leaves the mean over this shard; sum the shards' totals and counts over processes.
    local = [model.metric_results[m] * len(indices) if len(indices) else 0.0 for m in metrics]
    *totals, count = sum_over_processes(local + [float(len(indices))])
    name = dataset.opt['name']
    model.metric_results = {m: total / count for m, total in zip(metrics, totals)}
    model._initialize_best_metric_results(name)
    for metric, value in model.metric_results.items():
        model._update_best_metric_result(name, metric, value, current_iter)
    if rank == 0:
        model._log_validation_metric_values(current_iter, name, tb_logger)


@contextmanager
def _metrics_not_recorded(model: SRModel) -> Iterator[None]:
    # A shard's mean is not the dataset's: keep it out of the best-metric record and the log.
    model._update_best_metric_result = lambda *args: None
    model._log_validation_metric_values = lambda *args: None
    try:
        yield
    finally:
        del model._update_best_metric_result, model._log_validation_metric_values
