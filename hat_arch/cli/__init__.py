"""Console scripts: ``basicsr`` (train, test, prepare data) and ``hat-sr`` (upscale, export, lam).

Each subcommand lives in its own module with ``main(argv) -> int``; this file only dispatches, importing the
subcommand's module (and with it torch and BasicSR) only once it is chosen, so ``--help`` answers at once.
"""
from __future__ import annotations

import argparse
import importlib
import sys

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


def _dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
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
