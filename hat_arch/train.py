"""``basicsr train`` / ``python -m hat_arch.train``: BasicSR's training pipeline with HAT registered.

The current directory is the root: experiments/ and tb_logger/ are written there.
"""
from __future__ import annotations

import os
import sys

import hat_arch  # noqa: F401  (fixes and registration first)


def main(argv: list[str] | None = None, prog: str = 'basicsr train') -> int:
    from basicsr.train import train_pipeline

    sys.argv = [prog] + (sys.argv[1:] if argv is None else list(argv))
    train_pipeline(os.getcwd())
    return 0


if __name__ == '__main__':
    sys.exit(main())
