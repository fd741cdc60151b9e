"""hat_arch.compat: BasicSR 1.4.2 imports and runs on today's torch / torchvision / SciPy / Python without warnings."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
import warnings

import pytest
import torch

import basicsr.utils.dist_util
from hat_arch import compat
from tests.conftest import ROOT


def test_import_fixes():
    from torchvision.transforms.functional_tensor import rgb_to_grayscale  # noqa: F401  (torchvision >= 0.17)
    from basicsr.archs.arch_util import LooseVersion

    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert LooseVersion('2.14.1+cpu') >= LooseVersion('0.9.0') and LooseVersion('0.9.0') < '0.10'
        from scipy.ndimage.filters import convolve  # noqa: F401  (basicsr.metrics.niqe)


def python312_env() -> dict:
    # The shim builds on `packaging`, pure Python: lend it this interpreter's copy. PYENV_VERSION serves pyenv shims.
    import packaging

    return {**os.environ, 'PYENV_VERSION': '3.12.1', 'PYTHONPATH': os.path.dirname(os.path.dirname(packaging.__file__))}


def python312() -> str | None:
    """A Python 3.12 on this machine, if there is one."""
    candidate = shutil.which('python3.12')
    if candidate and subprocess.run([candidate, '-c', 'import packaging'], capture_output=True,
                                    env=python312_env()).returncode == 0:
        return candidate
    return None


@pytest.mark.slow  # spawns processes (also to look for a Python 3.12: not at collection, which -m "not slow" does too)
def test_distutils_shim_on_python_312():
    python = python312()
    if python is None:
        pytest.skip('no Python 3.12 on this machine')
    code = ('import importlib.util, sys\n'
            f'spec = importlib.util.spec_from_file_location("compat", {str(ROOT / "hat_arch" / "compat.py")!r})\n'
            'compat = importlib.util.module_from_spec(spec); spec.loader.exec_module(compat)\n'
            'with compat._loose_version_for_basicsr():\n'
            '    from distutils.version import LooseVersion\n'
            'assert LooseVersion("0.29.1") >= LooseVersion("0.9.0") and sys.version_info >= (3, 12)\n'
            'assert "distutils.version" not in sys.modules\n')
    run = subprocess.run([python, '-c', code], capture_output=True, text=True, env=python312_env())
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_importing_hat_arch_leaves_setuptools_alone():
    # With setuptools' distutils shim, `import distutils` costs 0.4 s (setuptools, pkg_resources) of every start-up.
    code = 'import sys, hat_arch; print([m for m in ("distutils", "setuptools", "pkg_resources") if m in sys.modules])'
    run = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.stdout.strip() == '[]', run.stderr


def test_fixes_are_installed_once_and_idempotent():
    from basicsr.archs import arch_util

    fixed = {'LooseVersion': arch_util.LooseVersion, 'flow_warp': arch_util.flow_warp}
    assert fixed['LooseVersion'] is compat._LooseVersion and fixed['flow_warp']._hat_arch_fix
    compat.apply()
    assert fixed == {'LooseVersion': arch_util.LooseVersion, 'flow_warp': arch_util.flow_warp}


def test_fixes_are_feature_detected():
    def fixed_upstream(opt):
        return torch.load(opt, map_location='cpu')

    assert not compat._needs_fix(fixed_upstream, 'torch.cuda.current_device()')
    assert compat._needs_fix(basicsr.utils.dist_util._init_dist_pytorch, '% num_gpus')  # BasicSR's own, unchanged
    module = types.ModuleType('basicsr._hat_arch_probe')
    module.imported = fixed_upstream
    sys.modules[module.__name__] = module
    try:
        def replacement(opt):
            return opt

        compat._replace(fixed_upstream, replacement)  # from-imports elsewhere in basicsr are redirected as well
        assert module.imported is replacement and replacement._hat_arch_fix
    finally:
        del sys.modules[module.__name__]


def test_flow_warp_without_meshgrid_warning():
    from basicsr.archs.basicvsr_arch import flow_warp  # imported by name before the fix was applied

    with warnings.catch_warnings():
        warnings.simplefilter('error')
        out = flow_warp(torch.rand(1, 2, 4, 5), torch.zeros(1, 4, 5, 2))
    assert out.shape == (1, 2, 4, 5)
