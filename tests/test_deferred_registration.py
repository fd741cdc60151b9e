"""``import hat_arch`` costs no BasicSR start-up, yet HAT's classes are in BasicSR's registries whenever it is imported.

Each case runs in a fresh interpreter: what an import loads is only visible in a process that has loaded nothing yet.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import DATA, ROOT, load_golden

REGISTERED = '''
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
import hat_arch
assert ARCH_REGISTRY.get('HAT') is hat_arch.HAT
for name in ('HATModel', 'RealHATGANModel', 'RealHATMSEModel'):
    MODEL_REGISTRY.get(name)
for name in ('ImageNetPairedDataset', 'RealESRGANDataset'):
    DATASET_REGISTRY.get(name)
from basicsr.archs import build_network
net = build_network({'type': 'HAT', 'upscale': 2, 'embed_dim': 12, 'depths': [1], 'num_heads': [2],
                     'window_size': 4, 'compress_ratio': 3, 'squeeze_factor': 3, 'upsampler': 'pixelshuffle'})
assert type(net) is hat_arch.HAT
print('REGISTERED')
'''
# What torchvision < 0.17 has, and the one thing `import basicsr` lacks on today's torchvision without hat_arch.
OLD_TORCHVISION = '''
import sys, types
from torchvision.transforms import functional
sys.modules['torchvision.transforms.functional_tensor'] = types.SimpleNamespace(
    rgb_to_grayscale=functional.rgb_to_grayscale)
'''


def run_python(code: str, cwd: Path = ROOT) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), str(ROOT)]), OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, '-c', code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow
def test_import_hat_arch_loads_no_basicsr_and_registers_at_its_first_import():
    # (nor the console scripts' module: the package never imports it, so no import cycle runs through them)
    loaded = ("import sys, hat_arch; print(sorted(m for m in ('basicsr', 'torchvision', 'scipy', 'hat_arch_launcher') "
              "if m in sys.modules))")
    assert run_python(loaded).splitlines() == ['[]']
    assert 'REGISTERED' in run_python('import hat_arch\n' + REGISTERED)


@pytest.mark.slow
def test_a_network_loaded_before_basicsr_is_registered_when_basicsr_comes():
    assert 'REGISTERED' in run_python('import hat_arch\nhat_arch.HAT\n' + REGISTERED)


@pytest.mark.slow
@pytest.mark.parametrize('module', ['hat_arch.training.basicsr_overrides', 'hat_arch.training.launch',
                                    'hat_arch.models.hat_model', 'hat_arch.data.checks'])
def test_a_module_that_loads_basicsr_imports_first_in_a_fresh_process(module):
    # Loading BasicSR registers hat_arch's models, which must not need the module that is still loading.
    assert 'REGISTERED' in run_python(f'import {module}\n' + REGISTERED)


@pytest.mark.slow
def test_basicsr_imported_first_then_hat_arch_registers():
    assert 'REGISTERED' in run_python(OLD_TORCHVISION + 'import basicsr\nimport hat_arch\n' + REGISTERED)


@pytest.mark.slow
def test_upscale_never_imports_basicsr_timm_or_torchvision(tmp_path):
    """Each costs seconds of start-up (timm's package init loads torchvision's feature extraction and torch._dynamo)
    that upscaling one photo does not need."""
    checkpoint = tmp_path / 'tiny_x4.pth'
    torch.save({'params_ema': load_golden('tiny_x4')['params']}, checkpoint)
    (tmp_path / 'sitecustomize.py').write_text(
        "import atexit, sys\natexit.register(lambda: print('LOADED:', [m for m in ('basicsr', 'timm', 'torchvision')"
        " if m in sys.modules]))\n")
    stdout = run_python('import sys; from hat_arch_launcher import hat_sr_main; sys.exit(hat_sr_main(['
                        f"'upscale', '-m', {str(checkpoint)!r}, {str(DATA / 'Set5' / 'LRbicx4' / 'head.png')!r},"
                        f" '-o', {str(tmp_path / 'out')!r}]))", cwd=tmp_path)
    assert (tmp_path / 'out' / 'head.png').is_file()
    assert 'LOADED: []' in stdout
