"""training/logs.py: each run logs to its own file and to the stderr of its time, however many ran before; the
training loop's progress line."""
from __future__ import annotations

import io
import logging
import re
import sys
import time

from hat_arch.training.logs import MessageLogger, pipeline_log, run_log
from tests.conftest import basicsr_log


def file_handlers(logger: logging.Logger) -> list[logging.FileHandler]:
    return [h for h in logger.handlers if isinstance(h, logging.FileHandler)]


def test_consecutive_runs_log_to_their_own_files(tmp_path):
    with run_log(str(tmp_path / 'first.log')) as logger:
        logger.info('from the first run')
    with run_log(str(tmp_path / 'second.log')) as logger:
        logger.info('from the second run')
        assert [h.baseFilename for h in file_handlers(logger)] == [str(tmp_path / 'second.log')]
    assert not file_handlers(logger)  # closed when its run ends
    assert 'from the first run' in (tmp_path / 'first.log').read_text()
    second = (tmp_path / 'second.log').read_text()
    assert 'from the second run' in second and 'first run' not in second
    assert ' INFO: from the second run' in second  # BasicSR's format


def test_a_file_left_by_basicsrs_first_get_root_logger_is_closed(tmp_path):
    left = logging.FileHandler(tmp_path / 'earlier.log')  # as get_root_logger leaves it, outside any run_log
    logging.getLogger('basicsr').addHandler(left)
    with run_log(str(tmp_path / 'run.log')) as logger:
        logger.info('from this run')
        assert left not in logger.handlers and left.stream is None  # closed
    assert 'from this run' not in (tmp_path / 'earlier.log').read_text()


def test_the_console_writes_to_the_stderr_of_the_run(tmp_path, capsys, monkeypatch):
    with monkeypatch.context() as earlier:  # BasicSR's handlers are made once, with the stderr of that time
        earlier.setattr(sys, 'stderr', io.StringIO())
        with run_log(str(tmp_path / 'first.log')):
            pass
    with run_log(str(tmp_path / 'run.log')) as logger:
        consoles = [h for h in logger.handlers if type(h) is logging.StreamHandler]
        assert consoles and all(h.stream is sys.stderr for h in consoles)
        logger.info('to this stderr')
    assert 'to this stderr' in capsys.readouterr().err


def test_a_pipeline_log_is_named_by_phase_and_run_and_opens_with_the_options(tmp_path):
    opt = {'name': 'tiny_run', 'path': {'log': str(tmp_path)}, 'scale': 4}
    with pipeline_log(opt, 'train') as logger:
        logger.info('first iteration')
    [log] = tmp_path.glob('train_tiny_run_*.log')
    text = log.read_text()
    assert 'PyTorch' in text and 'scale: 4' in text  # the environment and the options, before the run's lines
    assert text.index('scale: 4') < text.index('first iteration')


def test_eta_counts_the_iterations_left_and_ends_at_zero(caplog):
    opt = {'name': 'tiny', 'logger': {'print_freq': 1, 'use_tb_logger': False}, 'train': {'total_iter': 100}}
    log = MessageLogger(opt, start_iter=0)
    log.start_time = time.time() - 100  # iterations 0-9, ten seconds each
    with basicsr_log(caplog):
        log({'epoch': 0, 'iter': 9, 'lrs': [1e-3], 'time': 10.0, 'data_time': 0.0, 'l_pix': 0.5})
        log.start_time = time.time() - 1010
        log({'epoch': 0, 'iter': 100, 'lrs': [1e-3], 'time': 10.0, 'data_time': 0.0, 'l_pix': 0.5})
    # 91 iterations left, then none (BasicSR counted 90, then -1: '-1 day, 23:59:50')
    assert re.findall(r'eta: ([^,]+),', caplog.text) == ['0:15:10', '0:00:00']
