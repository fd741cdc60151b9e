"""Whole-file writes for the YOLO tools (comparison records, synthetic labels): the file appears complete or not at
all, so an interrupted comparison never reads half a record. Written to a private temporary file in the target's
folder (an unpredictable name, created exclusively), then renamed over the target."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hat_arch.errors import HatError, first_line


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
        with os.fdopen(descriptor, 'w', encoding='utf-8') as file:
            file.write(text)
        os.replace(temporary, path)
    except OSError as error:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise HatError(f'cannot write {path}: {first_line(error)}') from None


def write_json(path: str | Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=1) + '\n')
