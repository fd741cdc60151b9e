"""The checkpoints a server offers (one file, or every checkpoint in a folder), each described by what its weights
show, and the one model kept loaded."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import detect_config, load_model, read_state_dict
from hat_arch.errors import HatError

CHECKPOINT_SUFFIXES = ('.pth', '.safetensors')


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    scale: int
    width: int
    depths: tuple[int, ...]
    num_params: int

    @property
    def label(self) -> str:
        """'name: x4, width 180, 6 x 6 blocks, 20.8 M parameters', as the model menu shows it."""
        depths = self.depths
        blocks = f'{len(depths)} x {depths[0]}' if len(set(depths)) == 1 else str(list(depths))
        return (f'{self.path.name}: x{self.scale}, width {self.width}, {blocks} blocks, '
                f'{self.num_params / 1e6:.2f} M parameters')


def describe_checkpoint(path: Path) -> Checkpoint:
    """What the checkpoint at ``path`` holds, from its weights (the network is built on the meta device: no memory)."""
    config = detect_config(read_state_dict(path), name=str(path))
    with torch.device('meta'):
        num_params = sum(p.numel() for p in HAT(**config).parameters())
    return Checkpoint(path, config['upscale'], config['embed_dim'], tuple(config['depths']), num_params)


def find_checkpoints(path: str | Path) -> list[Checkpoint]:
    """The checkpoint at ``path``, or those in the folder ``path`` (a file that is not a HAT checkpoint is skipped
    with a line on stderr); HatError if there is none."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES and p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise HatError(f'{path}: no such checkpoint or folder')
    found = []
    for file in files:
        try:
            found.append(describe_checkpoint(file))
        except HatError as error:
            if len(files) == 1:
                raise
            print(f'hat-sr serve: skipping {file}: {error}', file=sys.stderr)
    if not found:
        raise HatError(f'{path}: no HAT checkpoints ({" or ".join(CHECKPOINT_SUFFIXES)}) there')
    return found


class ModelCache:
    """The model of the last request, kept loaded while the next ones ask for the same checkpoint and precision.
    Requests run one at a time (the app's queue), so one model in memory is enough."""

    def __init__(self, device: str = 'auto') -> None:
        self.device = device
        self._key: tuple[Path, str] | None = None
        self._model: HAT | None = None

    def get(self, checkpoint: Checkpoint, precision: str) -> HAT:
        key = (checkpoint.path, precision)
        if key != self._key:
            self._model = self._key = None  # free the old model before loading the new one
            self._model = load_model(checkpoint.path, device=self.device, precision=precision)
            self._key = key
        return self._model
