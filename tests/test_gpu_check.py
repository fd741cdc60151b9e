"""benchmarks/gpu_check.sh, which runs on a machine with a CUDA GPU: it parses, and every piece it calls exists and
accepts what the script passes (the tests it selects, the benchmark's flags, the training recipe it writes)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hat_arch.training.options import parse_options

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'benchmarks' / 'gpu_check.sh'


def load(name: str):
    sys.path.insert(0, str(ROOT / 'benchmarks'))  # gpu_check imports bench_hat as its neighbour, as when run
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / 'benchmarks' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / 'benchmarks'))


def script_variable(name: str) -> list[str]:
    return re.search(rf'^{name}="([^"]*)"', SCRIPT.read_text(), re.MULTILINE).group(1).split()


def test_the_script_parses():
    assert subprocess.run(['bash', '-n', str(SCRIPT)], capture_output=True, text=True).returncode == 0


@pytest.mark.parametrize('test_id', script_variable('GPU_TESTS'))
def test_the_tests_it_runs_on_the_gpu_exist_and_follow_the_device_switch(test_id):
    path, name = test_id.split('::')
    source = (ROOT / path).read_text()
    body = source[source.index(f'def {name}('):].split('\ndef ')[0]
    assert 'DEVICE' in body  # else HAT_TEST_DEVICE=cuda would run it on the CPU


def test_the_benchmark_takes_its_flags():
    args = load('bench_hat').build_parser().parse_args(script_variable('BENCH_FLAGS'))
    assert (args.device, args.amp, args.compare, args.mode) == ('cuda', 'bf16', 'naive', 'infer')


def test_the_training_recipe_passes_the_start_up_checks(tmp_path):
    options = load('gpu_check').training_options(tmp_path)
    opt, _ = parse_options(['-opt', str(options)], str(tmp_path), is_train=True, prog='basicsr train')
    assert opt['train']['amp'] == 'bf16' and opt['train']['total_iter'] <= 200
    assert Path(opt['datasets']['train']['dataroot_gt']).is_dir()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason='checks what happens without a GPU')
def test_without_a_gpu_the_script_and_the_device_switch_say_so(tmp_path):
    script = subprocess.run(['bash', str(SCRIPT)], env={**os.environ, 'PYTHON': sys.executable, 'WORK': str(tmp_path)},
                            capture_output=True, text=True, timeout=120)
    assert script.returncode == 2 and 'sees no CUDA device; nothing was run' in script.stderr
    tests = subprocess.run([sys.executable, '-m', 'pytest', '-q', script_variable('GPU_TESTS')[0]], cwd=ROOT,
                           env={**os.environ, 'HAT_TEST_DEVICE': 'cuda'}, capture_output=True, text=True, timeout=300)
    assert tests.returncode != 0
    assert 'HAT_TEST_DEVICE=cuda but PyTorch sees no CUDA device' in tests.stdout + tests.stderr
