"""training/rng.py: every random state a process draws from is saved, restored and kept across a block."""
from __future__ import annotations

import contextlib
import io
import random

import numpy as np
import pytest
import torch

from hat_arch.training.rng import get_rng_state, preserved_rng, set_rng_state


def draws() -> tuple:
    return random.random(), float(np.random.rand()), np.random.randn(), torch.rand(3).tolist()


def test_a_restored_state_repeats_the_same_draws():
    np.random.randn()  # leaves numpy's cached gaussian in the state
    state = get_rng_state()
    first = draws()
    set_rng_state(state)
    assert draws() == first


def test_the_state_survives_a_weights_only_save_and_load():
    state = get_rng_state()
    first = draws()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    set_rng_state(torch.load(buffer, weights_only=True))
    assert draws() == first


@pytest.mark.parametrize('fails', [False, True])
def test_a_preserved_block_leaves_the_states_as_they_were(fails):
    state = get_rng_state()
    expected = draws()
    set_rng_state(state)
    with pytest.raises(RuntimeError) if fails else contextlib.nullcontext():
        with preserved_rng():
            draws()
            if fails:
                raise RuntimeError('validation failed')
    assert draws() == expected
