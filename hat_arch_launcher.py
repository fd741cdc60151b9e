"""Console scripts ``basicsr`` (train, test, prepare data), ``hat-sr`` (upscale, export, lam, serve) and ``hat-yolo``.

It loads neither torch nor BasicSR (``import hat_arch`` does not): ``hat-sr --help`` answers at once, and a command
sets its process up (:func:`hat_arch.process_setup.prepare_process`) before torch is loaded, as OpenMP reads its
settings then. Each subcommand lives in its own module with ``main(argv, prog) -> int``, imported only once it is
chosen. The package never imports this module (``hat_arch.cli`` re-exports its entry points for calls from Python);
it stays a top-level module because installed console scripts name it (``hat_arch_launcher:basicsr_main``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

from hat_arch.process_setup import is_user_error, prepare_process

BASICSR_COMMANDS = {
    'train': ('hat_arch.train', 'train a model from a BasicSR option file (-opt X.yml)'),
    'test': ('hat_arch.test', 'evaluate a model from a BasicSR option file (-opt X.yml)'),
    'prepare': ('hat_arch.cli.prepare', 'prepare datasets: sub-images, meta-info files, bicubic LR, benchmarks'),
}
HAT_SR_COMMANDS = {
    'upscale': ('hat_arch.cli.upscale', 'upscale images with a HAT checkpoint'),
    'export': ('hat_arch.cli.export', 'export a HAT checkpoint to ONNX'),
    'lam': ('hat_arch.cli.lam', 'local attribution map and diffusion index of a model'),
    'serve': ('hat_arch.cli.serve', 'a web page on this machine that upscales images (needs hat_arch[web])'),
}


def _dispatch(prog: str, description: str, commands: dict[str, tuple[str, str]], argv: list[str] | None) -> int:
    if argv is None:  # run as the console script, not called from Python: the process is ours
        prepare_process()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in commands:
        try:
            module = importlib.import_module(commands[argv[0]][0])
        except Exception as error:  # a user error while the command loads (torchvision made for another torch)
            if not is_user_error(error):
                raise
            print(f'{prog} {argv[0]}: error: {error}', file=sys.stderr)
            return 2
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


def hat_yolo_main() -> int:
    """``hat-yolo MODE ARG=VALUE ...``: Ultralytics' ``yolo`` with HAT registered, in a process set up as the others."""
    prepare_process()
    from hat_arch.cli import yolo

    return yolo.main()
