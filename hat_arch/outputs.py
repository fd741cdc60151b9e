"""No command writes over a file it reads: the outputs a run plans are checked against its inputs before any write."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from hat_arch.errors import HatError


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
