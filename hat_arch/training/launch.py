"""Running a pipeline from a console script: user errors as one line, our behaviour for BasicSR's classes during the run
(:mod:`hat_arch.training.basicsr_overrides`), a clean exit from the process group."""
from __future__ import annotations

import os
import sys
from typing import Callable

import torch

from hat_arch.errors import report_user_errors
from hat_arch.training.basicsr_overrides import overriding_basicsr_classes
from hat_arch.training.distributed import is_distributed


def run_pipeline(pipeline: Callable[[str, list[str], str], None], argv: list[str] | None, prog: str) -> int:
    """``pipeline(root, argv, prog)`` with the current directory as root; the exit status of the command.

    A :class:`HatError` prints ``<prog>: error: <message>`` and gives 2; Ctrl-C prints ``<prog>: interrupted`` with
    the note the pipeline gave its KeyboardInterrupt (training: what is kept, how to continue) and gives 130.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        with overriding_basicsr_classes():  # our guarantees for BasicSR's own classes too, for this run only
            return report_user_errors(lambda: pipeline(os.getcwd(), argv, prog) or 0, prog)
    except KeyboardInterrupt as interrupt:
        print(f'{prog}: interrupted' + (f'; {interrupt}' if str(interrupt) else ''), file=sys.stderr)
        return 130
    finally:
        if is_distributed():
            torch.distributed.destroy_process_group()
