"""The docs' figures script states the conditions a figure holds under, and a failed measurement is no figure."""
from __future__ import annotations

import re
import runpy
import sys
import types
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'doc_figures.py'


@pytest.fixture(scope='module')
def figures():
    sys.path.insert(0, str(SCRIPT.parent))  # as when run: the script imports benchmarks/machine.py beside it
    try:
        return types.SimpleNamespace(**runpy.run_path(str(SCRIPT)))  # the script's functions, without running main
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_the_machine_line_names_cores_load_torch_and_threads(figures):
    text = figures.machine(threads=3)
    assert re.search(r'\d+ usable cores of \d+', text)
    assert re.search(r'load average \(1, 5, 15 min\) now: [\d.]+, [\d.]+, [\d.]+', text)
    assert f'torch {torch.__version__}' in text and 'threads per run: 3' in text


def test_a_run_reports_its_time_and_the_load_range_while_it_ran(figures):
    seconds, load = figures.run_timed([sys.executable, '-c', 'import time; time.sleep(0.3)'], threads=1)
    assert seconds >= 0.3
    assert len(load.samples) >= 2 and re.fullmatch(r'load average [\d.]+-[\d.]+', str(load))


def test_a_failed_run_stops_with_its_output_instead_of_giving_a_time(figures):
    with pytest.raises(SystemExit, match=r'(?s)failed \(exit 3\).*boom'):
        figures.run_timed([sys.executable, '-c', "print('boom'); raise SystemExit(3)"], threads=1)
