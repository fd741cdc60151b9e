"""Progress of long work: the callback the library calls, and a tqdm bar that shows it.

Long-running functions (:func:`hat_arch.upscale`, :func:`hat_arch.lam`) take
``progress(done, total)``, called with ``done = 0`` before the first unit of work and after each one. ``total`` can
change while the work runs (a run retried with smaller tiles has more of them), and ``done`` can go back then.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

from tqdm import tqdm

Progress = Callable[[int, int], None]


@contextmanager
def progress_bar(description: str, unit: str, enabled: bool = True, **options) -> Iterator[Progress]:
    """A :data:`Progress` callback shown as a tqdm bar on stderr while the block runs (nothing if not ``enabled``).

    The bar appears at the first report, so that work which fails before it starts leaves no empty bar.
    """
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if not enabled:
            return
        if bar is None:
            bar = tqdm(total=total, desc=description, unit=unit, file=sys.stderr, dynamic_ncols=True, **options)
        bar.total = total
        if done < bar.n:  # a retry starts over
            bar.n = done
            bar.refresh()
        else:
            bar.update(done - bar.n)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
