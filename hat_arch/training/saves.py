"""Checkpoints that survive a crash: atomic ``.pth`` / ``.state`` writes, and the start-up check of their folder.

BasicSR writes checkpoints in place, so a kill or a full disk during a save leaves a truncated file as the newest
checkpoint, and it only warns when a save fails. Here every file goes through :mod:`hat_arch.atomic_write` (fsynced,
renamed over the target): at any instant the target is either the previous complete file or the new complete one.
A failed save raises :class:`CheckpointError`, which stops training with the last good checkpoint intact.

:func:`save_network` and :func:`save_training_state` are ``BaseModel`` methods: BasicSR's of the same names, writing the
same content atomically.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time

import torch
from basicsr.utils.dist_util import master_only

from hat_arch.atomic_write import AtomicWriteError, remove_leftovers, write_atomic
from hat_arch.errors import HatError
from hat_arch.output_checks import cannot_write
from hat_arch.training.distributed import all_gather_objects
from hat_arch.training.rng import get_rng_state


class CheckpointError(HatError):
    """A checkpoint could not be written (disk full, folder gone or read-only); the previous ones are intact."""


def atomic_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    try:
        write_atomic(path, lambda file: torch.save(obj, file))
    except AtomicWriteError as error:
        raise CheckpointError(f'{error}{_free_space(os.path.dirname(os.path.abspath(path)))}; '
                              'the previous checkpoints are intact') from error.__cause__


def _free_space(folder: str) -> str:
    with contextlib.suppress(OSError):
        return f' ({shutil.disk_usage(folder).free / 2**20:.0f} MiB free there)'
    return ''


def remove_temporary_files(folder: str) -> list[str]:
    """Delete the temporary files that saves killed mid-way left in ``folder`` (the run's own: every one there is a
    dead run's); returns their names."""
    return remove_leftovers(folder, older_than=time.time())


def check_writable(folder: str, needed_bytes: int = 0) -> None:
    """Fail now, with a clear message, if checkpoints could not be written to ``folder`` later."""
    problem = cannot_write(folder)
    if problem:
        raise HatError(f'cannot write to experiment folder {folder}: {problem}')
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise HatError(f'not enough free space for checkpoints in {folder}: one checkpoint takes about '
                       f'{needed_bytes / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free')


def checkpoint_bytes(model) -> int:
    """About how many bytes one checkpoint of a BasicSR model takes: its networks, plus Adam's two moments."""
    networks = [net for net in vars(model).values() if isinstance(net, torch.nn.Module)]
    tensors = [t for net in networks for t in net.state_dict().values()]
    optimized = [p for o in getattr(model, 'optimizers', []) for g in o.param_groups for p in g['params']]
    return sum(t.numel() * t.element_size() for t in tensors) + 2 * sum(p.numel() * p.element_size() for p in optimized)


@master_only
def save_network(self, net, net_label: str, current_iter: int, param_key='params') -> None:
    """BasicSR's ``BaseModel.save_network``, atomically: ``{param_key: state_dict}`` in ``<label>_<iter>.pth``."""
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError('save_network needs one param_key per network')
    save_dict = {}
    for net_, key in zip(nets, keys):
        state_dict = self.get_bare_model(net_).state_dict()  # no 'module.' prefix; keeps the version metadata
        for name, value in state_dict.items():
            state_dict[name] = value.cpu()
        save_dict[key] = state_dict
    label = 'latest' if current_iter == -1 else current_iter
    atomic_save(save_dict, os.path.join(self.opt['path']['models'], f'{net_label}_{label}.pth'))


@master_only
def save_training_state(self, epoch: int, current_iter: int) -> None:
    """BasicSR's ``BaseModel.save_training_state`` (epoch, iter, optimizers, schedulers), written atomically.

    A training loop adds what exact continuation needs (random states, sampler position) by setting
    ``model.training_state_extras`` to a dict before calling ``model.save``.
    """
    if current_iter == -1:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers]}
    state.update(getattr(self, 'training_state_extras', None) or {})
    atomic_save(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def save_checkpoint(model, epoch: int, current_iter: int, samples_done: int) -> None:
    """``model.save`` plus what exact continuation needs; every process takes part (random states are gathered)."""
    model.training_state_extras = {
        'samples_done': samples_done,  # over all processes, within this epoch
        'rng': all_gather_objects(get_rng_state()),  # indexed by rank
        'grad_scalers': {name: scaler.state_dict() for name, scaler in grad_scalers(model).items()},
        'best_metric_results': _best_metric_record(model),
    }
    try:
        model.save(epoch, current_iter)
    finally:
        del model.training_state_extras


def _best_metric_record(model) -> dict:
    """BasicSR's record behind the validation log's 'Best: ... @ iter', with plain floats: metrics return numpy
    scalars, which a weights-only load refuses."""
    return {dataset: {metric: {**record, 'val': float(record['val'])} for metric, record in metrics.items()}
            for dataset, metrics in getattr(model, 'best_metric_results', {}).items()}


def grad_scalers(model) -> dict[str, torch.amp.GradScaler]:
    """The gradient scalers the model holds (HATModel's grad_scaler), by attribute name."""
    return {name: value for name, value in vars(model).items() if isinstance(value, torch.amp.GradScaler)}
