"""The log file of one run, written by BasicSR's 'basicsr' logger on rank 0, and the training loop's progress line.

BasicSR's ``get_root_logger`` sets its handlers up only the first time it is called in a process: a run started
after anything else logged (another run, a test, a notebook cell) would log to no file, or to the previous run's,
and to the stderr of that time.
"""
from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

from basicsr.utils import MessageLogger as BasicSRMessageLogger
from basicsr.utils import get_env_info, get_root_logger, get_time_str
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.options import dict2str

FORMAT = '%(asctime)s %(levelname)s: %(message)s'  # BasicSR's


@contextmanager
def run_log(log_file: str) -> Iterator[logging.Logger]:
    """The 'basicsr' logger, writing to ``log_file`` (rank 0) until the block ends."""
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=log_file)
    consoles = {h: h.stream for h in logger.handlers if type(h) is logging.StreamHandler}
    for console in consoles:  # to this run's stderr (the first run's may be closed by now)
        console.stream = sys.stderr
    handler = None
    if get_dist_info()[0] == 0:
        logger.setLevel(logging.INFO)
        path = os.path.abspath(log_file)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            if old.baseFilename == path:
                handler = old
            else:  # a previous run's file
                logger.removeHandler(old)
                old.close()
        if handler is None:
            handler = logging.FileHandler(path, 'w')
            handler.setFormatter(logging.Formatter(FORMAT))
            logger.addHandler(handler)
    try:
        yield logger
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()
        for console, stream in consoles.items():
            console.stream = stream


@contextmanager
def pipeline_log(opt: dict, phase: str) -> Iterator[logging.Logger]:
    """:func:`run_log` to ``<path.log>/<phase>_<name>_<time>.log``, opened with the environment and the options, as
    BasicSR's train and test pipelines start their logs."""
    log_file = os.path.join(opt['path']['log'], f"{phase}_{opt['name']}_{get_time_str()}.log")
    with run_log(log_file) as logger:
        logger.info(get_env_info())
        logger.info(dict2str(opt))
        yield logger


class MessageLogger(BasicSRMessageLogger):
    """BasicSR's progress line (``[name..][epoch, iter, lr)] [eta: ...] losses``), with an ETA that ends at 0:00:00.

    BasicSR counts ``total_iter - iter - 1`` iterations left after ``iter``: one too few, and at the last iteration
    a negative time, logged as ``-1 day, 23:59:59``.
    """

    def __init__(self, opt: dict, start_iter: int = 1, tb_logger=None):
        super().__init__(opt, start_iter, tb_logger)
        self.max_iters = int(self.max_iters) + 1  # BasicSR uses it for the ETA only
