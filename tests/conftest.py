"""Shared test fixtures: the golden vectors (tests/golden) and the benchmark images (datasets/), both in the repository:
a clone passes its tests with nothing beside it."""
from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

import hat_arch  # noqa: F401  (BasicSR fixes and registration before any test imports basicsr)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / 'tests' / 'golden'
DATA = ROOT / 'datasets'
GOLDEN_CASES = ['tiny_x2', 'tiny_x3', 'tiny_x4', 'tiny_x4_gray', 'tiny_x4_range255']

# Where the device-aware tests (golden outputs, fused against naive attention) run: the CPU, or the GPU with
# HAT_TEST_DEVICE=cuda (benchmarks/gpu_check.sh).
DEVICE = torch.device(os.environ.get('HAT_TEST_DEVICE', 'cpu'))
if DEVICE.type == 'cuda':
    if not torch.cuda.is_available():
        raise RuntimeError(f'HAT_TEST_DEVICE={DEVICE} but PyTorch sees no CUDA device')
    # TF32 convolutions and matmuls differ from the fp32 reference outputs by about 1e-3.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

# A tiny HAT for fast tests (about 0.1M parameters).
TINY_HAT = dict(upscale=4, in_chans=3, img_size=64, window_size=8, compress_ratio=3, squeeze_factor=8,
                conv_scale=0.01, overlap_ratio=0.5, img_range=1.0, depths=[2, 2], embed_dim=24, num_heads=[2, 2],
                mlp_ratio=2, upsampler='pixelshuffle', resi_connection='1conv')


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def load_golden(name: str) -> dict:
    return torch.load(GOLDEN / f'{name}.pt', weights_only=True)


@contextlib.contextmanager
def basicsr_log(caplog) -> Iterator[None]:
    """``caplog`` records BasicSR's logger (which does not propagate to caplog's root handler) within the block."""
    basicsr_logger = logging.getLogger('basicsr')
    basicsr_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger='basicsr'):
            yield
    finally:
        basicsr_logger.removeHandler(caplog.handler)


@pytest.fixture(scope='session')
def bench():
    """benchmarks/bench_hat.py as a module (the benchmarks folder is not a package)."""
    spec = importlib.util.spec_from_file_location('bench_hat', ROOT / 'benchmarks' / 'bench_hat.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
