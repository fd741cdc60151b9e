"""The checkpoints a server offers (one file, or every checkpoint in a folder), each described by what its weights
show (:func:`hat_arch.checkpoint.describe`), and the one model kept loaded."""
from __future__ import annotations

import sys
from pathlib import Path

from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import ModelInfo, describe, load_model
from hat_arch.batch import each_file, error_line
from hat_arch.errors import HatError, first_line

CHECKPOINT_SUFFIXES = ('.pth', '.safetensors')


def label(info: ModelInfo) -> str:
    """'name: HAT x4 (pixelshuffle): 3 channels, width 180, 6 x 6 blocks, window 16, 20.77 M parameters', as the
    model menu shows it."""
    return f'{info.path.name}: {info.summary()}, {info.num_params / 1e6:.2f} M parameters'


def model_menu(checkpoints: list[ModelInfo]) -> dict[str, ModelInfo]:
    """The page's one model menu: each checkpoint by its :func:`label`, the first one chosen at start."""
    return {label(info): info for info in checkpoints}


def find_checkpoints(path: str | Path) -> list[ModelInfo]:
    """The checkpoint at ``path``, or those in the folder ``path``: a file there that is not a usable HAT checkpoint
    (another network, a malformed or unreadable file) is skipped with a line on stderr saying why; HatError if none
    is left, or if the one file named is not usable."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise HatError(f'{path}: no such checkpoint or folder')
    found = []
    for outcome in each_file(files, describe, explain=_why_unusable):  # say why a file is left out, offer the others
        if not outcome.failed:
            found.append(outcome.result)
        elif path.is_file():
            raise HatError(outcome.error)
        else:
            print(f'hat-sr serve: skipped: {outcome.error}', file=sys.stderr)
    if not found:
        raise HatError(f'{path}: no HAT checkpoints ({" or ".join(CHECKPOINT_SUFFIXES)}) there')
    return found


def _why_unusable(error: BaseException) -> str:
    return error_line(error) if isinstance(error, HatError) else (
        f'not a usable HAT checkpoint ({type(error).__name__}: {first_line(error)})')


class ModelCache:
    """The model of the last request, kept loaded while the next ones ask for the same checkpoint and precision.
    Requests run one at a time (the app's queue), so one model in memory is enough."""

    def __init__(self, device: str = 'auto') -> None:
        self.device = device
        self._key: tuple[Path, str] | None = None
        self._model: HAT | None = None

    def get(self, info: ModelInfo, precision: str) -> HAT:
        key = (info.path, precision)
        if key != self._key:
            self._model = self._key = None  # free the old model before loading the new one
            self._model = load_model(info.path, device=self.device, precision=precision)
            self._key = key
        return self._model
