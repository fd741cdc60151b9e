"""Comparing a state dict with the one a network expects, in one short line."""
from __future__ import annotations

import torch

# Buffers that the state dict holds but the window sizes define (the reference saves them).
POSITION_INDEX_KEYS = ('relative_position_index_SA', 'relative_position_index_OCA')


def describe_state_dict_mismatch(expected: dict[str, torch.Tensor], given: dict[str, torch.Tensor],
                                 limit: int = 3) -> str:
    """'' when ``given`` has exactly the keys and shapes of ``expected``, else the first differences in one line."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    shapes = [f'{k} {tuple(given[k].shape)} vs {tuple(v.shape)} expected' for k, v in expected.items()
              if k in given and tuple(given[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (('missing', missing), ('unexpected', unexpected), ('shape mismatch', shapes)):
        if items:
            more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
            parts.append(f'{label} ({len(items)}): ' + ', '.join(items[:limit]) + more)
    return '; '.join(parts)


class StateDictMismatch(RuntimeError):
    """A state dict that does not fit the network; ``problem`` names the first differences in one line."""

    def __init__(self, problem: str):
        super().__init__(f'state dict does not fit this HAT: {problem}')
        self.problem = problem
