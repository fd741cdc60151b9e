"""``basicsr test`` / ``python -m hat_arch.test``: BasicSR's test pipeline with HAT registered.

The current directory is the root: results/ is written there. With ``--launcher pytorch`` (torchrun) or ``slurm``
rank 0 tests every image while the other processes wait, as in BasicSR (only training spreads validation over the
processes; see :mod:`hat_arch.training.validation`): one process is as fast.
"""
from __future__ import annotations

import sys

import hat_arch  # noqa: F401  (fixes and registration first)
import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.models import build_model
from basicsr.utils import make_exp_dirs

from hat_arch.data.checks import check_dataset_options
from hat_arch.errors import HatError
from hat_arch.problems import Problems
from hat_arch.training.launch import run_pipeline
from hat_arch.training.logs import pipeline_log
from hat_arch.training.options import parse_options
from hat_arch.training.run_folder import hold_run_folder
from hat_arch.training.validation import validate


def main(argv: list[str] | None = None, prog: str = 'basicsr test') -> int:
    return run_pipeline(test_pipeline, argv, prog)


def test_pipeline(root_path: str, argv: list[str], prog: str = 'basicsr test') -> None:
    """Evaluate as the option file in ``argv`` says, writing results/<name>/ under ``root_path``."""
    problems = Problems()
    opt, args = parse_options(argv, root_path, is_train=False, prog=prog, problems=problems)
    check_dataset_options(opt, problems)  # missing folders, unpaired or unreadable images, before any work
    problems.raise_if_any(f'option file {args.opt}')  # the file's and its data's, all at once
    with hold_run_folder(opt['path']['results_root'], [*prog.split(), *argv]):  # not archived while it runs
        evaluate(opt)


def evaluate(opt: dict) -> None:
    """Build the test sets and the model of the parsed options ``opt``, and write each set's results and metrics."""
    torch.backends.cudnn.benchmark = True
    try:
        make_exp_dirs(opt)
    except OSError as error:
        raise HatError(f'cannot create the results folder {opt["path"]["results_root"]}: {error}') from error
    with pipeline_log(opt, 'test') as logger:
        test_loaders = []
        for _, dataset_opt in sorted(opt['datasets'].items()):
            test_set = build_dataset(dataset_opt)
            test_loaders.append(build_dataloader(test_set, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'],
                                                 sampler=None, seed=opt['manual_seed']))
            logger.info(f"Number of test images in {dataset_opt['name']}: {len(test_set)}")
        model = build_model(opt)
        for test_loader in test_loaders:
            logger.info(f"Testing {test_loader.dataset.opt['name']}...")
            validate(model, [test_loader], opt['name'], None, opt['val'].get('save_img', False))


if __name__ == '__main__':  # the process was set up by hat_arch/__init__ (hat_arch.process_setup.prepare_process)
    sys.exit(main(prog=f'python -m {__spec__.name}'))
