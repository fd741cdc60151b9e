"""The random states of a process (python, numpy, torch, CUDA), saved with a training state for exact continuation.

The states hold only tuples, ints, floats and tensors, so a ``.state`` file still loads with
``torch.load(..., weights_only=True)`` (numpy's own state holds an ndarray, which that refuses).
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def get_rng_state() -> dict:
    """Every random state that data augmentation and training draw from in this process."""
    kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': {'kind': kind, 'keys': torch.from_numpy(keys.astype(np.int64)), 'pos': int(pos),
                  'has_gauss': int(has_gauss), 'cached_gaussian': float(cached_gaussian)},
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`get_rng_state`'s result (CUDA states only where this machine has the GPUs)."""
    random.setstate(state['python'])
    numpy = state['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(np.uint32), numpy['pos'], numpy['has_gauss'],
                         numpy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    if torch.cuda.is_available() and state.get('cuda'):
        for device, cuda_state in enumerate(state['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (e.g. validation) without changing the random states training continues from."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
