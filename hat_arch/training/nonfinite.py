"""Non-finite losses: skip the step, log it, and stop after ``train: max_nonfinite_steps`` of them in a row.

Works for any BasicSR model without touching its ``optimize_parameters``: a pre-step hook on each of the model's
optimizers looks at the gradients and, when one is NaN or infinite, drops them all (``grad = None``), which makes
``optimizer.step()`` leave the weights and the optimizer state (e.g. Adam's moments and step count) untouched.
Under DDP the gradients are already averaged over processes, so every process skips the same steps; the decision to
stop is also shared. Learning-rate schedules still count the iteration. Buffers a forward pass updates in place
(e.g. BatchNorm statistics; HAT has none) are not rolled back.
"""
from __future__ import annotations

import logging
import math

import torch

from hat_arch.errors import HatError
from hat_arch.training.distributed import any_process

DEFAULT_MAX_NONFINITE_STEPS = 10
logger = logging.getLogger('basicsr')


class NonFiniteLossError(HatError):
    """Training stopped because too many steps in a row had non-finite losses."""


class NonFiniteGuard:
    """Guards ``optimizers``; call :meth:`check` after every ``optimize_parameters``."""

    def __init__(self, optimizers: list[torch.optim.Optimizer], max_in_row: int = DEFAULT_MAX_NONFINITE_STEPS):
        if not isinstance(max_in_row, int) or isinstance(max_in_row, bool) or max_in_row < 1:
            raise HatError(f'train: max_nonfinite_steps must be a positive integer, got {max_in_row!r}')
        self.max_in_row = max_in_row
        self.in_row = 0
        self.skipped = False
        self.handles = [o.register_step_pre_hook(self._before_step) for o in optimizers]

    def _before_step(self, optimizer: torch.optim.Optimizer, args, kwargs) -> None:
        params = [p for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
        if params and not torch.stack([p.grad.isfinite().all() for p in params]).all():
            for p in params:
                p.grad = None  # optimizers skip parameters without a gradient: this step changes nothing
            self.skipped = True

    def check(self, current_iter: int, losses: dict, last_checkpoint: int | None) -> None:
        """Log a skipped step; raise :class:`NonFiniteLossError` after ``max_in_row`` in a row."""
        bad_losses = {k: v for k, v in losses.items() if isinstance(v, float) and not math.isfinite(v)}
        bad = any_process(self.skipped or bool(bad_losses))
        self.skipped = False
        if not bad:
            self.in_row = 0
            return
        self.in_row += 1
        described = ', '.join(f'{k}={v}' for k, v in bad_losses.items()) or 'non-finite gradients'
        logger.warning(f'Iteration {current_iter}: non-finite loss ({described}); step skipped '
                       f'({self.in_row} in a row, stopping at {self.max_in_row}).')
        if self.in_row >= self.max_in_row:
            kept = (f'the last checkpoint (iteration {last_checkpoint}) is intact' if last_checkpoint is not None
                    else 'no checkpoint was saved yet')
            raise NonFiniteLossError(
                f'training stopped at iteration {current_iter}: {self.in_row} non-finite losses in a row '
                f'(train: max_nonfinite_steps = {self.max_in_row}); {kept}. Lower the learning rate or check the '
                'data, then resume with --auto_resume')

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
