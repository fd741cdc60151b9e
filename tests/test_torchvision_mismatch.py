"""A torchvision made for another torch: one line naming both versions and the fix, in every command that loads it
(simulated: the import of torchvision raises what such a pair raises)."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

import pytest
import torch

from hat_arch import compat
from hat_arch.errors import HatError
from tests.training.tiny import console_script, subprocess_env

SYMPTOM = 'operator torchvision::nms does not exist'


# A finder whose torchvision fails while its code runs, as one built for another torch does (its operators' fake
# implementations are registered for operators that this torch never loaded). As a sitecustomize.py it is installed
# before a child process runs anything; the tests of this process run the same code.
SITECUSTOMIZE = f'''import importlib.machinery
import sys


class MismatchedTorchvision:
    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self) if name == 'torchvision' else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError({SYMPTOM!r})
'''
namespace: dict = {}
exec(SITECUSTOMIZE, namespace)
MismatchedTorchvision = namespace['MismatchedTorchvision']


def expected_message(symptom: str = SYMPTOM) -> str:
    return compat.torchvision_mismatch(symptom)


@pytest.mark.parametrize('torch_version, vision, message', [
    ('2.5.1+cpu', '0.19.1', "torchvision 0.19.1 does not match torch 2.5.1+cpu (it is the release for torch 2.4): "
     "install the torchvision made for this torch, e.g. pip install 'torchvision==0.20.*' --index-url "
     'https://download.pytorch.org/whl/cpu (operator torchvision::nms does not exist)'),
    ('2.6.0', '0.22.0', "torchvision 0.22.0 does not match torch 2.6.0 (it is the release for torch 2.7): install the "
     "torchvision made for this torch, e.g. pip install 'torchvision==0.21.*' (operator torchvision::nms does not "
     'exist)'),
    ('2.5.1+cpu', '0.20.1+cu121', 'torchvision 0.20.1+cu121 is the release for torch 2.5.1+cpu but its operators do '
     'not load: it was built for another variant (CPU or CUDA); reinstall it for this one, e.g. pip install '
     "--force-reinstall --no-deps 'torchvision==0.20.*' --index-url https://download.pytorch.org/whl/cpu (operator "
     'torchvision::nms does not exist)'),
])
def test_the_message_names_both_versions_and_the_matching_release(monkeypatch, torch_version, vision, message):
    monkeypatch.setattr(torch, '__version__', torch_version)
    monkeypatch.setattr('importlib.metadata.version', lambda name: {'torchvision': vision}[name])
    assert compat.torchvision_mismatch(SYMPTOM) == message


def test_a_mismatched_torchvision_is_one_line_where_basicsr_would_import_it(monkeypatch):
    monkeypatch.setattr(sys, 'meta_path', [MismatchedTorchvision(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, 'torchvision', raising=False)
    with pytest.raises(HatError) as error:
        compat.import_torchvision()
    assert str(error.value) == expected_message()
    assert str(error.value).startswith(f'torchvision {version("torchvision")} ')
    assert f' torch {torch.__version__}' in str(error.value)


def test_other_import_failures_are_not_called_a_mismatch(monkeypatch):
    class Broken(MismatchedTorchvision):
        def exec_module(self, module):
            raise RuntimeError('CUDA driver initialization failed')

    monkeypatch.setattr(sys, 'meta_path', [Broken(), *sys.meta_path])
    monkeypatch.delitem(sys.modules, 'torchvision', raising=False)
    with pytest.raises(RuntimeError, match='CUDA driver'):
        compat.import_torchvision()


@pytest.mark.slow  # starts processes
@pytest.mark.parametrize('command, prog, status', [
    ([console_script('basicsr'), 'test', '-opt', 'x.yml'], 'basicsr test', 2),
    ([console_script('basicsr'), 'train', '-opt', 'x.yml'], 'basicsr train', 2),
    ([sys.executable, '-m', 'hat_arch.train', '-opt', 'x.yml'], 'python -m hat_arch.train', 1),
    ([console_script('hat-yolo'), 'predict', 'model=yolov8n.pt'], 'hat-yolo', 2),
], ids=['basicsr test', 'basicsr train', 'python -m', 'hat-yolo'])
def test_every_command_that_loads_torchvision_says_it_in_one_line(tmp_path, command, prog, status):
    (tmp_path / 'sitecustomize.py').write_text(SITECUSTOMIZE + 'sys.meta_path.insert(0, MismatchedTorchvision())\n')
    env = subprocess_env()
    env['PYTHONPATH'] = f"{tmp_path}:{env['PYTHONPATH']}"
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.stderr == f'{prog}: error: {expected_message()}\n'
    assert run.returncode == status
