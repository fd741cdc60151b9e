"""The training loop's progress line."""
from __future__ import annotations

import re
import time

from hat_arch.training.logs import MessageLogger
from tests.conftest import basicsr_log


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
