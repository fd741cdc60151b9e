"""``hat-yolo``: Ultralytics' ``yolo`` command with HAT registered, e.g.
``hat-yolo train model=yolov8n-hat-neck.yaml data=my.yaml``.

Everything is handed to Ultralytics' own entry point unchanged, except that ``model=`` naming a model YAML shipped
with hat_arch (and no file of that name here) is given its path.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hat_arch.errors import report_user_errors

PROG = 'hat-yolo'


def resolve_model_arg(argument: str) -> str:
    """``model=NAME.yaml`` with NAME a shipped configuration and no such local file -> ``model=<its path>``."""
    from hat_arch.yolo import model_yaml

    key, _, value = argument.partition('=')
    if key != 'model' or not value.endswith('.yaml') or Path(value).exists() or '-hat-' not in value:
        return argument
    return f'model={model_yaml(value)}'


def run(argv: list[str]) -> int:
    from hat_arch.compat import import_torchvision

    import_torchvision()  # Ultralytics imports it: a torchvision made for another torch is one line here
    import hat_arch.yolo  # noqa: F401  (registers HAT before Ultralytics parses any model)
    from ultralytics import cfg

    # Ultralytics' CLI reads the command line it captured at import (cfg.ARGV, the list sys.argv was): it gets ours
    # there, whole, as `yolo` gets its own; the string form of entrypoint() would split an argument at its spaces.
    captured = list(cfg.ARGV)
    cfg.ARGV[:] = [PROG, *(resolve_model_arg(argument) for argument in argv)]
    try:
        cfg.entrypoint()
    finally:
        cfg.ARGV[:] = captured
    return 0


def main(argv: list[str] | None = None) -> int:
    """``hat-yolo MODE ARG=VALUE ...``; a :class:`HatError` (missing extra, bad HAT arguments) is one line."""
    return report_user_errors(lambda: run(sys.argv[1:] if argv is None else list(argv)), PROG)


if __name__ == '__main__':
    sys.exit(main())
