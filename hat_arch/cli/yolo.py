"""``hat-yolo``: Ultralytics' ``yolo`` command with HAT registered, e.g.
``hat-yolo train model=yolo11n-hat-neck.yaml data=my.yaml``, and one mode of its own,
``hat-yolo compare data=my.yaml models=yolo11n.yaml,yolo11n-hat-neck.yaml seeds=3`` (see
:mod:`hat_arch.yolo.compare`).

Everything is handed to Ultralytics' own entry point unchanged: with HAT registered, ``model=`` naming a model
YAML shipped with hat_arch (and no file of that name here) finds it in the package, as in Python.
"""
from __future__ import annotations

import sys

from hat_arch.errors import report_user_errors

PROG = 'hat-yolo'


def run(argv: list[str]) -> int:
    from hat_arch.compat import import_torchvision

    import_torchvision()  # Ultralytics imports it: a torchvision made for another torch is one line here
    import hat_arch.yolo  # noqa: F401  (registers HAT before Ultralytics parses any model)

    if argv[:1] == ['compare']:
        from hat_arch.yolo import compare

        return compare.main(argv[1:])
    from ultralytics import cfg

    # Ultralytics' CLI reads the command line it captured at import (cfg.ARGV, the list sys.argv was): it gets ours
    # there, whole, as `yolo` gets its own; the string form of entrypoint() would split an argument at its spaces.
    captured = list(cfg.ARGV)
    cfg.ARGV[:] = [PROG, *argv]
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
