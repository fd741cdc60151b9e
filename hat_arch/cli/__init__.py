"""Console scripts: ``basicsr`` (train, test, prepare data) and ``hat-sr`` (upscale, export, lam).

Each subcommand lives in its own module with ``main(argv) -> int``; this file only dispatches, importing the
subcommand's module (image I/O, plotting, ONNX, ...) only once it is chosen. Run as commands, they own their process
and set it up for speed first (:func:`use_huge_pages`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

THP_SETTING = Path('/sys/kernel/mm/transparent_hugepage/enabled')

BASICSR_COMMANDS = {
    'train': ('hat_arch.train', 'train a model from a BasicSR option file (-opt X.yml)'),
    'test': ('hat_arch.test', 'evaluate a model from a BasicSR option file (-opt X.yml)'),
    'prepare': ('hat_arch.cli.prepare', 'prepare datasets: sub-images, meta-info files, bicubic LR, benchmarks'),
}
HAT_SR_COMMANDS = {
    'upscale': ('hat_arch.cli.upscale', 'upscale images with a HAT checkpoint'),
    'export': ('hat_arch.cli.export', 'export a HAT checkpoint to ONNX'),
    'lam': ('hat_arch.cli.lam', 'local attribution map and diffusion index of a model'),
}


def use_huge_pages() -> None:
    """Let PyTorch put large CPU tensors on transparent huge pages, in a process that the commands own.

    HAT's activations (tens to hundreds of MiB) are allocated and freed in every block; glibc returns such blocks to
    the OS, so each new one faults in again, 4 KiB at a time. With ``THP_MEM_ALLOC_ENABLE=1`` PyTorch aligns CPU
    tensors of 2 MiB or more to 2 MiB and asks the kernel for huge pages: a 256x256 HAT x4 upscale on 2 CPU cores takes
    30.6 s instead of 38.9 s, at the same peak memory. PyTorch reads the variable at its first allocation of that size,
    which no import makes. A value the user set is kept; nothing changes where the kernel has no transparent huge pages.
    """
    try:
        available = '[never]' not in THP_SETTING.read_text()
    except OSError:  # not Linux, or a kernel without transparent huge pages
        available = False
    if available:
        os.environ.setdefault('THP_MEM_ALLOC_ENABLE', '1')


def _dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
    if argv is None:  # run as the console script, not called from Python: the process is ours
        use_huge_pages()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in commands:
        module = importlib.import_module(commands[argv[0]][0])
        return module.main(argv[1:], prog=f'{prog} {argv[0]}') or 0
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(title='commands', metavar='COMMAND')
    for name, (_, help_text) in commands.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv:
        parser.print_help()
        return 2
    parser.parse_args(argv)  # prints help, or a one-line error for an unknown command
    return 2


def basicsr_main(argv: list[str] | None = None) -> int:
    """``basicsr train|test|prepare ...``: BasicSR's pipelines with HAT registered, rooted at the current folder."""
    return _dispatch('basicsr', 'BasicSR pipelines with hat_arch registered (runs in the current folder).',
                     BASICSR_COMMANDS, argv)


def hat_sr_main(argv: list[str] | None = None) -> int:
    """``hat-sr upscale|export|lam ...``: use released HAT checkpoints without option files."""
    return _dispatch('hat-sr', 'Super-resolve images with HAT checkpoints.', HAT_SR_COMMANDS, argv)
