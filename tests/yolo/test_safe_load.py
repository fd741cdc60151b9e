"""No code from a YOLO checkpoint runs: ``import hat_arch.yolo`` and ``hat-yolo`` load ``.pt`` files with torch's
weights_only and Ultralytics' allow-list; a file that would run code is refused in one line naming it; unsafe
loading is an opt-in by name (``HAT_YOLO_UNSAFE_LOAD=1``)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
import hat_arch.yolo  # noqa: E402, F401
from hat_arch.cli import yolo as yolo_cli  # noqa: E402
from hat_arch.errors import HatError  # noqa: E402
from hat_arch.yolo.safe_load import UNSAFE_SWITCH  # noqa: E402
from tests.conftest import ROOT  # noqa: E402


class _CreatesMarker:
    """Unpickling this calls os.system: the code a hostile checkpoint runs on a plain torch.load."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def evil_checkpoint(folder: Path, name: str = 'evil_best.pt') -> tuple[Path, Path]:
    """A ``.pt`` whose loading would create a marker file, shaped as an Ultralytics checkpoint; (file, marker)."""
    marker = folder / f'{name}.marker'
    path = folder / name
    torch.save({'model': _CreatesMarker(marker), 'train_args': {}}, path)
    return path, marker


def test_python_use_refuses_a_checkpoint_that_would_run_code(tmp_path):
    from ultralytics import YOLO

    path, marker = evil_checkpoint(tmp_path)
    with pytest.raises(HatError) as caught:
        YOLO(str(path))
    assert not marker.exists()
    message = str(caught.value)
    assert '\n' not in message and str(path) in message and 'would run code' in message and UNSAFE_SWITCH in message


def test_every_ultralytics_torch_load_is_safe(tmp_path):
    """Not only model loading: the loader every Ultralytics reader goes through (training resume, caches, SAM)."""
    from ultralytics.utils import patches, torch_utils

    path, marker = evil_checkpoint(tmp_path, 'last.pt')
    for torch_load in (patches.torch_load, torch_utils.torch_load):
        with pytest.raises(HatError, match='would run code'):
            torch_load(path, map_location='cpu')
    assert torch_utils.strip_optimizer(path) == {}  # it warns that it skips a file it cannot load
    assert not marker.exists()


def test_cli_refuses_it_in_one_line_naming_the_file(tmp_path, capsys):
    path, marker = evil_checkpoint(tmp_path)
    assert yolo_cli.main(['predict', f'model={path}', f'source={tmp_path}', 'device=cpu']) == 2
    assert not marker.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f'hat-yolo: error: YOLO checkpoint {path} was refused: loading it would run code')


@pytest.mark.slow
@pytest.mark.parametrize('unsafe', [False, True])
def test_hat_yolo_command_refuses_it_unless_unsafe_loading_is_asked_for_by_name(tmp_path, unsafe):
    path, marker = evil_checkpoint(tmp_path)
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    env.pop(UNSAFE_SWITCH, None)
    env.pop('ULTRALYTICS_SAFE_LOAD', None)  # what a user's shell has: hat-yolo is safe without it
    if unsafe:
        env[UNSAFE_SWITCH] = '1'
    run = subprocess.run([sys.executable, '-m', 'hat_arch.cli.yolo', 'predict', f'model={path}',
                          f'source={tmp_path}', 'device=cpu'], capture_output=True, text=True, env=env, cwd=ROOT)
    assert marker.exists() == unsafe
    if not unsafe:
        assert run.returncode == 2
        assert run.stderr.strip().splitlines() == [
            f'hat-yolo: error: YOLO checkpoint {path} was refused: loading it would run code (it names the Python '
            f'object posix.system); {UNSAFE_SWITCH}=1 loads a file you trust with Ultralytics\' unsafe loading']
