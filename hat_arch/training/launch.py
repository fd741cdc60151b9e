"""Running a pipeline from a console script: user errors as one line, Ctrl-C and SIGTERM as a clean stop, our behaviour
for BasicSR's classes during the run (:mod:`hat_arch.training.basicsr_overrides`), a clean exit from the process group.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

import torch

from hat_arch.errors import report_user_errors
from hat_arch.training.basicsr_overrides import overriding_basicsr_classes
from hat_arch.training.distributed import is_distributed


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a scheduler's time limit, torchrun stopping its workers), raised where the run is, as Ctrl-C
    raises KeyboardInterrupt: the same handlers stop the run and say what it keeps."""


def run_pipeline(pipeline: Callable[[str, list[str], str], None], argv: list[str] | None, prog: str) -> int:
    """``pipeline(root, argv, prog)`` with the current directory as root; the exit status of the command.

    A :class:`HatError` prints ``<prog>: error: <message>`` and gives 2; Ctrl-C prints ``<prog>: interrupted`` with
    the note the pipeline gave its KeyboardInterrupt (training: what is kept, how to continue) and gives 130; SIGTERM
    prints ``<prog>: terminated`` with that note and gives 143 (128 + SIGTERM, as a process killed by it).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        # (our guarantees for BasicSR's own classes too, for this run only)
        with sigterm_raises(), overriding_basicsr_classes():
            return report_user_errors(lambda: pipeline(os.getcwd(), argv, prog) or 0, prog)
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        print(f'{prog}: {"terminated" if terminated else "interrupted"}' + (f'; {stop}' if str(stop) else ''),
              file=sys.stderr)
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if is_distributed():
            torch.distributed.destroy_process_group()


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (signals are handled only there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
