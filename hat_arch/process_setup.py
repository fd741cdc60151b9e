"""Setting up a process that one of hat_arch's commands owns, before torch is loaded (OpenMP reads its settings then).

Used by the console scripts (:mod:`hat_arch_launcher`) and, for ``python -m hat_arch.train`` / ``hat_arch.test``, by
``hat_arch/__init__``, which runs before those modules import torch. Importing this module imports nothing heavy.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

THP_SETTING = Path('/sys/kernel/mm/transparent_hugepage/enabled')

# The modules that are commands when run with ``python -m``.
MODULE_COMMANDS = ('hat_arch.train', 'hat_arch.test')


def prepare_process() -> None:
    """Set up a process that one of our commands owns, for speed; a value the user set is kept.

    Call it before torch is imported (OpenMP reads its variables when torch loads it).
    """
    use_passive_waiting()
    use_huge_pages()


def use_passive_waiting() -> None:
    """Let OpenMP's idle threads sleep instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    Between two parallel regions PyTorch's CPU threads spin for a while by default; when other programs keep the cores
    busy, the spinning threads take their time slices: training the demo HAT on 2 shared cores (load average 3.3)
    took 2.1-2.6 s per iteration without it, 0.25 s with it.
    """
    os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')


def use_huge_pages() -> None:
    """Let PyTorch put large CPU tensors on transparent huge pages.

    HAT's activations (tens to hundreds of MiB) are allocated and freed in every block; glibc returns such blocks to
    the OS, so each new one faults in again, 4 KiB at a time. With ``THP_MEM_ALLOC_ENABLE=1`` PyTorch aligns CPU
    tensors of 2 MiB or more to 2 MiB and asks the kernel for huge pages: a 256x256 HAT x4 upscale on 2 CPU cores takes
    30.6 s instead of 38.9 s, at the same peak memory. PyTorch reads the variable at its first allocation of that size,
    which no import makes. Nothing changes where the kernel has no transparent huge pages.
    """
    try:
        available = '[never]' not in THP_SETTING.read_text()
    except OSError:  # not Linux, or a kernel without transparent huge pages
        available = False
    if available:
        os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')


def started_as_module_command() -> bool:
    """Whether this interpreter was started as ``python -m hat_arch.train`` or ``python -m hat_arch.test``."""
    argv = list(getattr(sys, 'orig_argv', []))[1:]  # the interpreter's own options first (Python >= 3.10)
    while argv:
        option = argv.pop(0)
        if option.startswith('-m'):
            return (option[2:] or (argv[0] if argv else '')) in MODULE_COMMANDS
        if option.startswith('-c') or not option.startswith('-'):  # code or a script: the rest are its arguments
            return False
        if option in ('-W', '-X'):  # their value is the next argument
            argv = argv[1:]
    return False
