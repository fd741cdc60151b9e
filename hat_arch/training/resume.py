"""Resume anywhere: the newest *complete* training state of an experiment, loaded on whatever device this machine has.

BasicSR's ``load_resume_state`` maps the state onto ``torch.cuda.current_device()`` (dies without a GPU), looks for
``--auto_resume`` states relative to the current directory rather than the experiment root, and takes the highest
iteration even when its file is truncated. :func:`load_resume_state` is what ``basicsr train`` uses in its
place: states load on the CPU (optimizers move their state onto their parameters' device when they
load it), and a state counts only if it and the network files it names load.
"""
from __future__ import annotations

import glob
import logging
import os
import re
import shlex

from basicsr.utils import check_resume
from basicsr.utils.dist_util import get_dist_info

from hat_arch.checkpoint import load_weights_only
from hat_arch.errors import HatError
from hat_arch.training.saves import grad_scalers
from hat_arch.training.distributed import broadcast_object

STATE_NAME = re.compile(r'^(\d+)\.state$')
logger = logging.getLogger('basicsr')


def read_state(path: str) -> dict:
    """A training state file, on the CPU; a :class:`HatError` naming the file if it is not one."""
    state = load_weights_only(path, 'training state')
    if not isinstance(state, dict) or not {'iter', 'epoch', 'optimizers', 'schedulers'} <= state.keys():
        raise HatError(f'{path} is not a BasicSR training state (no iter/epoch/optimizers/schedulers)')
    return state


def network_files(opt: dict, current_iter: int) -> list[str]:
    """The network files BasicSR's ``check_resume`` loads when resuming from iteration ``current_iter``."""
    ignored = opt['path'].get('ignore_resume_networks') or []
    return [os.path.join(opt['path']['models'], f"net_{key[len('network_'):]}_{current_iter}.pth")
            for key in opt if key.startswith('network_') and key not in ignored]


def saved_iterations(opt: dict) -> list[int]:
    """The iterations of the training states under ``opt['path']['training_states']``, newest first."""
    folder = opt['path']['training_states']
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted((int(m.group(1)) for n in names if (m := STATE_NAME.match(n))), reverse=True)


def continuation_note(opt: dict, command: list[str]) -> str:
    """What a stopped run leaves, for its last message: the checkpoint that ``--auto_resume`` continues from and the
    ``command`` (the run's own, as words) that does it, or that no checkpoint was saved yet."""
    saved = saved_iterations(opt)
    if not saved:
        note = (f"no checkpoint was saved yet (the first comes at iteration {opt['logger']['save_checkpoint_freq']}): "
                'the same command starts the run again')
        archived = sorted(glob.glob(glob.escape(opt['path']['experiments_root']) + '_archived_*'))
        if archived:  # BasicSR renamed the earlier run of this name when this one started: say where it went
            note += f'; the earlier run of this name is in {os.path.relpath(archived[-1])}'
        return note
    files = [os.path.join(opt['path']['training_states'], f'{saved[0]}.state'), *network_files(opt, saved[0])]
    resume = [] if {'--auto_resume', '--auto-resume'} & set(command) else ['--auto_resume']
    launcher = ' under torchrun or srun, as before' if opt.get('dist') else ''
    return (f"the checkpoint of iteration {saved[0]} is kept ({', '.join(map(os.path.relpath, files))}); "
            f'continue with: {shlex.join(command + resume)}{launcher}')


def find_complete_state(opt: dict) -> tuple[str | None, dict | None, list[str]]:
    """The newest state under ``opt['path']['training_states']`` that loads and whose network files load.

    Returns its path and content (None, None if there is none) and a note on each newer state that was skipped.
    """
    skipped = []
    for current_iter in saved_iterations(opt):
        path = os.path.join(opt['path']['training_states'], f'{current_iter}.state')
        try:
            state = read_state(path)
            for network in network_files(opt, current_iter):
                # mmap reads the zip directory only: enough to reject a missing or truncated file cheaply.
                load_weights_only(network, 'network file', mmap=True)
        except HatError as error:
            skipped.append(f'Skipping incomplete checkpoint {path}: {error}')
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


def restore_training_state(model, state: dict, opt: dict, logger: logging.Logger) -> tuple[int, int, int, list | None]:
    """Optimizers, schedulers and gradient scalers from ``state``; its epoch, iteration, position in the epoch
    (samples, all processes) and per-process random states (None when they cannot be used exactly)."""
    check_schedule_unchanged(model, state, opt)
    model.resume_training(state)  # optimizers and schedulers
    for name, scaler in grad_scalers(model).items():
        saved = state.get('grad_scalers', {}).get(name)
        if saved:
            scaler.load_state_dict(saved)
        elif saved == {} and scaler.is_enabled():  # saved while disabled (no fp16 then): start a fresh scale
            logger.warning(f'Gradient scaler {name} was off in the saved run; it starts from its initial scale.')
    if state.get('best_metric_results'):  # else BasicSR's record of the best validation restarts at the resume
        model.best_metric_results = state['best_metric_results']
    for note in state.get('skipped_states', []):
        logger.warning(note)
    logger.info(f"Resuming training from epoch: {state['epoch']}, iter: {state['iter']}.")
    rng_states = state.get('rng')
    if rng_states is None or len(rng_states) != opt['world_size']:
        logger.warning('The training state has no random states for this number of processes: the run continues '
                       'from there, though not exactly as an uninterrupted run would.')
        rng_states = None
    return state['epoch'], state['iter'], state.get('samples_done', 0), rng_states


# What a scheduler's saved state fixes (BasicSR's MultiStepRestartLR and CosineAnnealingRestartLR, torch's own), and
# how the option file names it.
SCHEDULE_SETTINGS = {'base_lrs': 'optim_g: lr', 'milestones': 'scheduler: milestones', 'gamma': 'scheduler: gamma',
                     'restarts': 'scheduler: restarts', 'restart_weights': 'scheduler: restart_weights',
                     'periods': 'scheduler: periods', 'eta_min': 'scheduler: eta_min'}


def check_schedule_unchanged(model, state: dict, opt: dict) -> None:
    """HatError if the option file's learning-rate schedule differs from the one saved in ``state``.

    Resuming loads the saved schedulers over those built from the option file, so a changed schedule would be
    ignored without a word (or, for new cosine periods, crash BasicSR's scheduler).
    """
    as_list = lambda value: list(value) if isinstance(value, tuple) else value  # noqa: E731  (YAML gives lists)
    for scheduler, saved in zip(getattr(model, 'schedulers', []), state.get('schedulers', [])):
        for key, option in SCHEDULE_SETTINGS.items():
            if key not in saved or not hasattr(scheduler, key):
                continue
            new, old = as_list(getattr(scheduler, key)), as_list(saved[key])
            if new != old:
                if key == 'milestones':
                    new, old = sorted(new.elements()), sorted(old.elements())
                raise HatError(f"train: {option} is {new} in the option file but {old} in the saved run "
                               f"{opt['path']['resume_state']}; a resumed run keeps its schedule: put the saved "
                               'value back, or start a new run from its network (path: pretrain_network_g)')
