"""Where a command writes, checked before it writes: the folder takes files, and no output replaces one of its inputs
(the outputs a run plans are checked against its inputs) or another output."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from hat_arch.atomic_write import TEMPORARY_SUFFIX
from hat_arch.errors import HatError, first_line


def check_outputs(pairs: Iterable[tuple[Path, Path]], hint: str) -> None:
    """HatError (``hint`` says what to change) if two ``(source, target)`` pairs write one file, or a target would
    replace a source: its own or another's.

    A target is compared by its folder's real path and its name: writes replace a symbolic link at the target itself,
    not the file it points to.
    """
    pairs = list(pairs)
    inputs: dict[Path, Path] = {}
    for source, _ in pairs:
        inputs.setdefault(source.resolve(), source)
    folders: dict[Path, Path] = {}
    by_target: dict[Path, Path] = {}
    for source, target in pairs:
        if target.parent not in folders:
            folders[target.parent] = target.parent.resolve()
        written = folders[target.parent] / target.name
        if by_target.setdefault(written, source) != source:
            raise HatError(f'{by_target[written]} and {source} would both be written to {target}; process them in '
                           'separate runs or folders')
        if written in inputs:
            replaced = 'it' if inputs[written] == source else f'the input {inputs[written]}'
            raise HatError(f'the output of {source} would replace {replaced}; {hint}')


def cannot_write(folder: str | Path, create: bool = True) -> str | None:
    """Why no file can be written in ``folder`` (see :func:`first_line`), or None when one can: a probe file is
    written, synced and removed there, after the folder is made with its parents when ``create``."""
    try:
        if create:
            os.makedirs(folder, exist_ok=True)
        # named as the atomic writer's files: a probe left by a kill is removed with their leftovers
        descriptor, probe = tempfile.mkstemp(prefix='.write-check.', suffix=TEMPORARY_SUFFIX, dir=folder)
        try:
            os.write(descriptor, b'hat_arch')
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
            os.remove(probe)
    except OSError as error:
        return first_line(error)
    return None


def check_writable_folder(folder: str | Path, what: str = 'output folder') -> None:
    """HatError ``cannot write to <what> <folder>: <reason>`` unless files can be written in ``folder``, which may
    not exist yet (then its nearest existing parent is probed: the caller creates it when it writes). Nothing is
    created."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = cannot_write(existing, create=False)
    if problem:
        raise HatError(f'cannot write to {what} {folder}: {problem}')
