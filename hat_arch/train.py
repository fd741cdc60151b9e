"""``basicsr train`` / ``python -m hat_arch.train``: BasicSR's training pipeline, made safe to interrupt and to scale.

The current directory is the root: experiments/ and tb_logger/ are written there. Compared with BasicSR's
``train_pipeline`` (whose pieces it reuses), this loop

- runs on one process or many (torchrun, srun; gloo on CPU, nccl on GPU) with logging and checkpoints on rank 0 and
  validation spread over the processes;
- saves everything exact continuation needs (random states of every process, the position within the epoch, EMA,
  optimizers, schedulers, gradient scalers), atomically, and resumes from the newest complete state on any device:
  a run killed and resumed ends with the same weights as one never interrupted (CPU, ``num_worker_per_gpu: 0``);
- skips steps with non-finite losses and stops after ``train: max_nonfinite_steps`` of them in a row (default 10);
- checks at start that the experiment folder is writable with room for a checkpoint, and holds it while it runs: a
  second run of the same name is refused instead of archiving the live run's folder (:mod:`.training.run_folder`);
- stops on SIGTERM as on Ctrl-C, keeping its last checkpoint and printing the command that continues.
"""
from __future__ import annotations

import argparse
import datetime
import logging
import os
import shlex
import sys
import time
from os import path as osp

import hat_arch  # noqa: F401  (fixes and registration first)
import torch
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model
from basicsr.train import init_tb_loggers
from basicsr.utils import AvgTimer, make_exp_dirs, mkdir_and_rename

from hat_arch.atomic_write import write_text_atomic
from hat_arch.data.checks import cap_workers, check_dataset_options
from hat_arch.errors import HatError
from hat_arch.problems import Problems
from hat_arch.training.saves import check_writable, checkpoint_bytes, remove_temporary_files, save_checkpoint
from hat_arch.training.launch import run_pipeline
from hat_arch.training.loaders import create_dataloaders
from hat_arch.training.logs import MessageLogger, pipeline_log
from hat_arch.training.nonfinite import DEFAULT_MAX_NONFINITE_STEPS, NonFiniteGuard
from hat_arch.training.options import parse_options
from hat_arch.training.resume import continuation_note, load_resume_state, restore_training_state
from hat_arch.training.rng import set_rng_state
from hat_arch.training.run_folder import hold_run_folder
from hat_arch.training.validation import validate


def main(argv: list[str] | None = None, prog: str = 'basicsr train') -> int:
    return run_pipeline(train_pipeline, argv, prog)


def train_pipeline(root_path: str, argv: list[str], prog: str = 'basicsr train') -> None:
    """Train as the option file in ``argv`` says, with ``root_path`` as the root of experiments/ and tb_logger/."""
    problems = Problems()  # the option file's, reported with its data's before anything is written
    opt, args = parse_options(argv, root_path, is_train=True, prog=prog, problems=problems)
    resume_state = None
    with problems.collect():  # before the data checks: resuming points pretrain_network_* at the run's own networks
        resume_state = load_resume_state(opt)
    check_dataset_options(opt, problems)  # missing folders, unpaired or unreadable images
    problems.raise_if_any(f'option file {args.opt}')
    command = [*prog.split(), *argv]
    try:
        with hold_run_folder(opt['path']['experiments_root'], command):
            prepare_and_train(opt, args, root_path, prog, resume_state)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: say what is kept, and how to go on (once: rank 0)
        raise type(stop)(continuation_note(opt, command) if opt['rank'] == 0 else '') from None


def prepare_and_train(opt: dict, args: argparse.Namespace, root_path: str, prog: str,
                      resume_state: dict | None) -> None:
    """Resume from ``resume_state`` or start the run of the checked options ``opt``: make its folders, then train."""
    if resume_state is None and args.auto_resume and opt['rank'] == 0:
        print(f"{prog}: --auto_resume: nothing to resume (no complete training state in "
              f"{opt['path']['training_states']}); training starts from iteration 0", file=sys.stderr, flush=True)
    for note in cap_workers(opt):
        if opt['rank'] == 0:
            print(f'{prog}: note: {note}', file=sys.stderr, flush=True)
    opt['root_path'] = root_path
    torch.backends.cudnn.benchmark = True
    is_main = opt['rank'] == 0
    try:
        if resume_state is None:
            make_exp_dirs(opt)
            if opt['logger'].get('use_tb_logger') and 'debug' not in opt['name'] and is_main:
                mkdir_and_rename(osp.join(root_path, 'tb_logger', opt['name']))
        copied = osp.join(opt['path']['experiments_root'], osp.basename(args.opt))
        # Rank 0 alone, as BasicSR's copy_opt_file: it makes the folder, which another rank could reach first.
        if is_main and not (osp.exists(copied) and osp.samefile(args.opt, copied)):  # resumed from the run's copy: keep
            copy_options_file(args.opt, opt['path']['experiments_root'])
    except OSError as error:
        raise HatError(f'cannot create the experiment folder {opt["path"]["experiments_root"]}: {error}') from error
    with pipeline_log(opt, 'train') as logger:
        data = create_dataloaders(opt, logger)
        model = build_model(opt)
        if is_main:
            for folder in (opt['path']['models'], opt['path']['training_states']):
                check_writable(folder, checkpoint_bytes(model))
                for name in remove_temporary_files(folder):
                    logger.info(f'Removed {name}, left by a save that was interrupted.')
        train_loop(opt, model, data, resume_state, logger)


def copy_options_file(opt_file: str, experiments_root: str) -> None:
    """BasicSR's ``copy_opt_file`` (the option file in the experiment folder, headed by the time and the command),
    written with :func:`hat_arch.atomic_write.write_atomic`: BasicSR copies and rewrites it in place."""
    with open(opt_file, encoding='utf-8') as file:
        options = file.read()
    header = f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {" ".join(sys.argv)}\n\n'
    write_text_atomic(osp.join(experiments_root, osp.basename(opt_file)), header + options)


def train_loop(opt: dict, model, data, resume_state: dict | None, logger: logging.Logger) -> None:
    """Iterate up to ``train: total_iter``: log, checkpoint and validate at their frequencies, then save the latest."""
    tb_logger = _tb_logger(opt)
    epoch, current_iter, samples_done, rng_states = 0, 0, 0, None
    if resume_state:
        epoch, current_iter, samples_done, rng_states = restore_training_state(model, resume_state, opt, logger)
    guard = NonFiniteGuard(model.optimizers, opt['train'].get('max_nonfinite_steps', DEFAULT_MAX_NONFINITE_STEPS))
    msg_logger = MessageLogger(opt, current_iter, tb_logger)
    prefetcher = _prefetcher(data.loader, opt, logger)
    total_iters = int(opt['train']['total_iter'])
    save_freq, print_freq = opt['logger']['save_checkpoint_freq'], opt['logger']['print_freq']
    val_freq = opt['val']['val_freq'] if opt.get('val') and data.val_loaders else None
    samples_per_iter = data.batch_size * opt['world_size']
    last_checkpoint = current_iter if resume_state else None
    validated_at = None

    logger.info(f'Start training from epoch: {epoch}, iter: {current_iter}')
    data_timer, iter_timer = AvgTimer(), AvgTimer()
    start_time = time.time()
    while current_iter < total_iters:
        data.sampler.set_epoch(epoch, start=samples_done // opt['world_size'])
        prefetcher.reset()  # a new loader iterator draws its base seed from torch's generator...
        if rng_states is not None:  # ...so the saved states are restored after it, as they were saved
            set_rng_state(rng_states[opt['rank']])
            rng_states = None
        while current_iter < total_iters and (train_data := prefetcher.next()) is not None:
            data_timer.record()
            current_iter += 1
            model.update_learning_rate(current_iter, warmup_iter=opt['train'].get('warmup_iter', -1))
            model.feed_data(train_data)
            model.optimize_parameters(current_iter)
            samples_done += samples_per_iter
            guard.check(current_iter, model.get_current_log(), last_checkpoint)
            iter_timer.record()
            if current_iter == 1:
                msg_logger.reset_start_time()
            if current_iter % print_freq == 0:
                log_vars = {'epoch': epoch, 'iter': current_iter, 'lrs': model.get_current_learning_rate(),
                            'time': iter_timer.get_avg_time(), 'data_time': data_timer.get_avg_time()}
                log_vars.update(model.get_current_log())
                msg_logger(log_vars)
            if val_freq and current_iter % val_freq == 0:  # before saving: the state keeps its best-metric record
                try:
                    validate(model, data.val_loaders, current_iter, tb_logger, opt['val'].get('save_img', False))
                except Exception:  # the error is reported once this iteration's work is safe
                    logger.error(f'Validation failed at iteration {current_iter}: saving its checkpoint first.')
                    save_checkpoint(model, epoch, current_iter, samples_done)
                    raise
                validated_at = current_iter
            if current_iter % save_freq == 0:
                logger.info('Saving models and training states.')
                save_checkpoint(model, epoch, current_iter, samples_done)
                last_checkpoint = current_iter
            data_timer.start()
            iter_timer.start()
        epoch, samples_done = epoch + 1, 0
    guard.remove()

    consumed_time = str(datetime.timedelta(seconds=int(time.time() - start_time)))
    logger.info(f'End of training. Time consumed: {consumed_time}')
    logger.info('Save the latest model.')
    model.save(epoch=-1, current_iter=-1)  # -1 stands for the latest
    if val_freq and validated_at != current_iter:
        validate(model, data.val_loaders, current_iter, tb_logger, opt['val'].get('save_img', False))
    if tb_logger:
        tb_logger.close()
    hint = upscale_hint(opt)
    if hint and opt['rank'] == 0:
        logger.info(hint)


def upscale_hint(opt: dict) -> str | None:
    """The command that upscales images with the network a finished run saved (``hat-sr upscale`` loads HATs: None
    for other networks)."""
    if (opt.get('network_g') or {}).get('type') != 'HAT':
        return None
    latest = osp.join(opt['path']['models'], 'net_g_latest.pth')
    inside = not osp.relpath(latest).startswith(os.pardir + os.sep)
    return ('Upscale images with this model: hat-sr upscale IMAGE -o OUTDIR -m '
            f'{shlex.quote(osp.relpath(latest) if inside else osp.abspath(latest))}')


def _tb_logger(opt: dict):
    if opt['rank'] != 0:
        return None
    try:
        return init_tb_loggers(opt)
    except ImportError as error:
        raise HatError(f'logger: cannot start the TensorBoard / wandb logger ({error}); install it '
                       '(pip install tensorboard / wandb) or set use_tb_logger: false') from error


def _prefetcher(loader, opt: dict, logger: logging.Logger):
    if opt['datasets']['train'].get('prefetch_mode') == 'cuda':  # checked with the options
        logger.info('Use cuda prefetch dataloader')
        return CUDAPrefetcher(loader, opt)
    return CPUPrefetcher(loader)


if __name__ == '__main__':  # the process was set up by hat_arch/__init__ (hat_arch.process_setup.prepare_process)
    sys.exit(main(prog=f'python -m {__spec__.name}'))
