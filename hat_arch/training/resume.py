"""Resume anywhere: the newest *complete* training state of an experiment, loaded on whatever device this machine has.

BasicSR's ``load_resume_state`` maps the state onto ``torch.cuda.current_device()`` (dies without a GPU), looks for
``--auto_resume`` states relative to the current directory rather than the experiment root, and takes the highest
iteration even when its file is truncated. :func:`load_resume_state` is a drop-in replacement (see
:mod:`hat_arch.compat`): states load on the CPU (optimizers move their state onto their parameters' device when they
load it), and a state counts only if it and the network files it names load.
"""
from __future__ import annotations

import logging
import os
import re

import torch
from basicsr.utils import check_resume
from basicsr.utils.dist_util import get_dist_info

from hat_arch.errors import HatError, first_line
from hat_arch.training.distributed import broadcast_object

STATE_NAME = re.compile(r'^(\d+)\.state$')
logger = logging.getLogger('basicsr')


def read_state(path: str) -> dict:
    """A training state file, on the CPU; a :class:`HatError` naming the file if it is not one."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # missing, truncated, or not a torch file at all
        raise HatError(f'cannot read training state {path}: {first_line(error)}') from error
    if not isinstance(state, dict) or not {'iter', 'epoch', 'optimizers', 'schedulers'} <= state.keys():
        raise HatError(f'{path} is not a BasicSR training state (no iter/epoch/optimizers/schedulers)')
    return state


def network_files(opt: dict, current_iter: int) -> list[str]:
    """The network files BasicSR's ``check_resume`` loads when resuming from iteration ``current_iter``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [os.path.join(opt['path']['models'], f"net_{key[len('network_'):]}_{current_iter}.pth")
            for key in opt if key.startswith('network_') and key not in ignored]


def find_complete_state(opt: dict) -> tuple[str | None, dict | None, list[str]]:
    """The newest state under ``opt['path']['training_states']`` that loads and whose network files load.

    Returns its path and content (None, None if there is none) and a note on each newer state that was skipped.
    """
    folder = opt['path']['training_states']
    names = os.listdir(folder) if os.path.isdir(folder) else []
    found = sorted(((int(m.group(1)), n) for n in names if (m := STATE_NAME.match(n))), reverse=True)
    skipped = []
    for current_iter, name in found:
        path = os.path.join(folder, name)
        try:
            state = read_state(path)
            for network in network_files(opt, current_iter):
                # mmap reads the zip directory only: enough to reject a missing or truncated file cheaply.
                torch.load(network, map_location='cpu', weights_only=True, mmap=True)
        except Exception as error:
            skipped.append(f'Skipping incomplete checkpoint {path}: {first_line(error)}')
            logger.warning(skipped[-1])
            continue
        return path, state, skipped
    return None, None, skipped


def load_resume_state(opt: dict) -> dict | None:
    """The state to resume from (``--auto_resume``: the newest complete one; else ``path: resume_state``), or None.

    Like BasicSR's function of the same name it sets ``opt['path']['resume_state']`` and, through ``check_resume``,
    the ``pretrain_network_*`` paths to the networks saved with that state. All processes resume from rank 0's choice.
    The notes on skipped newer states are in the result's ``'skipped_states'``.
    """
    skipped = []
    if opt.get('auto_resume'):
        path, state, skipped = find_complete_state(opt) if get_dist_info()[0] == 0 else (None, None, [])
        path = broadcast_object(path)
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path, state = opt['path'].get('resume_state'), None
    if path is None:
        return None
    if state is None:
        state = read_state(path)
    check_resume(opt, state['iter'])
    state['skipped_states'] = skipped
    return state
