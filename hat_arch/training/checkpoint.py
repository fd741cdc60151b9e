"""Checkpoints that survive a crash: atomic ``.pth`` / ``.state`` writes, and the start-up check of their folder.

BasicSR writes checkpoints in place, so a kill or a full disk during a save leaves a truncated file as the newest
checkpoint, and it only warns when a save fails. Here every file is written to a hidden temporary file in the same
folder, flushed and fsynced, then renamed over the target (``os.replace`` is atomic): at any instant the target is
either the previous complete file or the new complete one. The temporary file is private while it is written; the
saved file gets the mode the umask gives any new file (0644 under umask 022). A failed save removes its temporary
file and raises :class:`CheckpointError`, which stops training with the last good checkpoint intact.

:func:`save_network` and :func:`save_training_state` are ``BaseModel`` methods: BasicSR's of the same names, writing the
same content atomically.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile

import torch
from basicsr.utils.dist_util import master_only

from hat_arch.errors import HatError, first_line
from hat_arch.outputs import cannot_write
from hat_arch.training.distributed import all_gather_objects
from hat_arch.training.rng import get_rng_state

TEMPORARY_SUFFIX = '.tmp'


class CheckpointError(HatError):
    """A checkpoint could not be written (disk full, folder gone or read-only); the previous ones are intact."""


def atomic_save(obj, path: str) -> None:
    """``torch.save(obj, path)`` that never leaves a partial file at ``path``."""
    folder, name = os.path.split(os.path.abspath(path))
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f'.{name}.', suffix=TEMPORARY_SUFFIX, dir=folder)
        with os.fdopen(descriptor, 'wb') as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
            os.fchmod(file.fileno(), 0o666 & ~current_umask())  # mkstemp made it 0600
        os.replace(temporary, path)
    except Exception as error:  # OSError, or torch's RuntimeError wrapping a failed write
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
        raise CheckpointError(f'cannot write {path}: {first_line(error)}{_free_space(folder)}; '
                              'the previous checkpoints are intact') from error
    _fsync_folder(folder)  # make the rename itself durable


def current_umask() -> int:
    """The process's umask, from /proc where Linux shows it; elsewhere reading it means setting it for a moment, during
    which a file made by another thread (a DataLoader's, a TensorBoard writer's) would get the private mode."""
    with contextlib.suppress(OSError, ValueError):
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def _free_space(folder: str) -> str:
    with contextlib.suppress(OSError):
        return f' ({shutil.disk_usage(folder).free / 2**20:.0f} MiB free there)'
    return ''


def _fsync_folder(folder: str) -> None:
    with contextlib.suppress(OSError):  # not every platform / filesystem can open or sync a directory
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def remove_temporary_files(folder: str) -> list[str]:
    """Delete the temporary files that saves killed mid-way left in ``folder``; returns their names."""
    if not os.path.isdir(folder):
        return []
    names = [n for n in os.listdir(folder) if n.startswith('.') and n.endswith(TEMPORARY_SUFFIX)]
    for name in names:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(folder, name))
    return names


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
