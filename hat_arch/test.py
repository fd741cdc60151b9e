"""``basicsr test`` / ``python -m hat_arch.test``: BasicSR's test pipeline with HAT registered.

The current directory is the root: results/ is written there.
"""
from __future__ import annotations

import os
import sys

import hat_arch  # noqa: F401  (fixes and registration first)


def main(argv: list[str] | None = None, prog: str = 'basicsr test') -> int:
    from basicsr.test import test_pipeline

    sys.argv = [prog] + (sys.argv[1:] if argv is None else list(argv))
    test_pipeline(os.getcwd())
    return 0


if __name__ == '__main__':
    sys.exit(main())
