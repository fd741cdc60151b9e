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
    """Set up a process that one of our commands owns, for speed and one-line errors; a value the user set is kept.

    Call it before torch is imported (OpenMP reads its variables when torch loads it).
    """
    use_passive_waiting()
    use_huge_pages()
    show_user_errors_in_one_line()


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
    return module_command() is not None


def module_command() -> str | None:
    """The module of :data:`MODULE_COMMANDS` this interpreter was started with (``python -m``), or None."""
    argv = list(getattr(sys, 'orig_argv', []))[1:]  # the interpreter's own options first (Python >= 3.10)
    while argv:
        option = argv.pop(0)
        if option.startswith('-m'):
            module = option[2:] or (argv[0] if argv else '')
            return module if module in MODULE_COMMANDS else None
        if option.startswith('-c') or not option.startswith('-'):  # code or a script: the rest are its arguments
            return None
        if option in ('-W', '-X'):  # their value is the next argument
            argv = argv[1:]
    return None


def show_user_errors_in_one_line() -> None:
    """A user error (``HatError``) that no command caught, such as one raised while ``python -m hat_arch.train``
    loads (a torchvision made for another torch), prints as ``<command>: error: <message>``, not as a traceback."""
    previous = sys.excepthook
    if getattr(previous, 'shows_user_errors', False):
        return

    def hook(kind, error, traceback):
        if not is_user_error(error):
            return previous(kind, error, traceback)
        module = module_command()
        command = f'python -m {module}' if module else ' '.join([Path(sys.argv[0]).name, *sys.argv[1:2]])
        print(f'{command}: error: {error}', file=sys.stderr)

    hook.shows_user_errors = True
    sys.excepthook = hook


def is_user_error(error: BaseException) -> bool:
    """Whether ``error`` is a ``hat_arch.errors.HatError`` (looked up where it is loaded: only a loaded module can
    have raised one)."""
    errors = sys.modules.get('hat_arch.errors')
    return errors is not None and isinstance(error, errors.HatError)
