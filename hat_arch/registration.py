"""Import every module of a folder whose file name ends with a suffix, the way BasicSR scans its own folders."""
from __future__ import annotations

import importlib
import os


def import_modules(package: str, folder: str, suffix: str) -> list:
    """Import ``package.<name>`` for each ``<name><suffix>`` in ``folder`` (sorted, so the order is stable)."""
    names = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(suffix))
    return [importlib.import_module(f'{package}.{name}') for name in names]
