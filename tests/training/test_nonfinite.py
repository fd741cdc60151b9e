"""Non-finite losses: the step is skipped (weights and optimizer state untouched), logged, and training stops after
``train: max_nonfinite_steps`` in a row."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hat_arch.errors import HatError
from hat_arch.train import main
from hat_arch.training.nonfinite import NonFiniteGuard, NonFiniteLossError
from tests.training.tiny import one_thread, read_log, tiny_options, write_options


def step(net: nn.Module, optimizer: torch.optim.Optimizer, scale: float) -> float:
    optimizer.zero_grad()
    loss = net(torch.ones(2, 3)).sum() * scale
    loss.backward()
    optimizer.step()
    return loss.item()


def test_guard_skips_non_finite_steps_and_stops_after_the_limit():
    net = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.1)
    guard = NonFiniteGuard([optimizer], max_in_row=2)
    guard.check(1, {'l_pix': step(net, optimizer, 1.0)}, None)
    weights, state = copy.deepcopy(net.state_dict()), copy.deepcopy(optimizer.state_dict())

    guard.check(2, {'l_pix': step(net, optimizer, float('nan'))}, 1)
    torch.testing.assert_close(net.state_dict(), weights, rtol=0, atol=0)
    torch.testing.assert_close(optimizer.state_dict()['state'], state['state'], rtol=0, atol=0)  # Adam step too
    assert guard.in_row == 1

    guard.check(3, {'l_pix': step(net, optimizer, 1.0)}, 1)  # a finite step resets the count and trains
    assert guard.in_row == 0 and not torch.equal(net.weight, weights['weight'])

    guard.check(4, {'l_pix': step(net, optimizer, float('inf'))}, 1)
    message = r'iteration 5: 2 non-finite losses in a row .*\(iteration 3\) is intact'
    with pytest.raises(NonFiniteLossError, match=message):
        guard.check(5, {'l_pix': step(net, optimizer, float('nan'))}, 3)
    guard.remove()
    step(net, optimizer, float('nan'))  # without the guard the NaN reaches the weights
    assert net.weight.isnan().all()


@pytest.mark.parametrize('limit', [0, -1, 1.5, True])
def test_limit_must_be_a_positive_integer(limit):
    with pytest.raises(HatError, match='max_nonfinite_steps must be a positive integer'):
        NonFiniteGuard([], limit)


@pytest.mark.slow  # trains
def test_training_with_nan_losses_stops_with_a_clear_message(tmp_path, monkeypatch, capsys):
    opt = tiny_options('nan', total_iter=8, save_every=2, validate_every=None)
    opt['train']['pixel_opt']['loss_weight'] = float('nan')
    opt['train']['max_nonfinite_steps'] = 3
    monkeypatch.chdir(tmp_path)
    with one_thread():
        assert main(['-opt', str(write_options(tmp_path, opt))]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == ('basicsr train: error: training stopped at iteration 3: 3 non-finite losses in a row (train: '
                     'max_nonfinite_steps = 3); the last checkpoint (iteration 2) is intact. Lower the learning rate '
                     'or check the data, then resume with --auto_resume')
    experiment = tmp_path / 'experiments' / 'nan'
    log = read_log(experiment)
    assert 'Iteration 1: non-finite loss (l_pix=nan); step skipped (1 in a row, stopping at 3).' in log
    saved = torch.load(experiment / 'models' / 'net_g_2.pth', weights_only=True)['params']
    assert all(v.isfinite().all() for v in saved.values() if v.is_floating_point())
