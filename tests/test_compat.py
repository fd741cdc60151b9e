"""hat_arch.compat: BasicSR 1.4.2 on today's torch / torchvision / SciPy / Python, CPU-only, without warnings."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import types
import warnings

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist

import basicsr.train
import basicsr.utils.dist_util
import basicsr.utils.options
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.models.base_model import BaseModel
from hat_arch import compat
from hat_arch.training import checkpoint, distributed, resume
from tests.conftest import ROOT
from tests.training.tiny import one_thread, tiny_options, write_options


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
    fixed = {
        'load_resume_state': basicsr.train.load_resume_state, 'init_dist': basicsr.utils.options.init_dist,
        'model_to_device': BaseModel.model_to_device, 'save_network': BaseModel.save_network,
        'save_training_state': BaseModel.save_training_state, 'dataset_item': PairedImageDataset.__getitem__,
    }
    assert fixed['dataset_item']._hat_arch_fix
    assert fixed['load_resume_state'] is resume.load_resume_state is basicsr.load_resume_state
    assert fixed['init_dist'] is distributed.init_dist is basicsr.utils.dist_util.init_dist
    assert fixed['save_network'] is checkpoint.save_network
    assert fixed['save_training_state'] is checkpoint.save_training_state
    compat.apply()
    assert fixed == {
        'load_resume_state': basicsr.train.load_resume_state, 'init_dist': basicsr.utils.options.init_dist,
        'model_to_device': BaseModel.model_to_device, 'save_network': BaseModel.save_network,
        'save_training_state': BaseModel.save_training_state, 'dataset_item': PairedImageDataset.__getitem__,
    }


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


@pytest.mark.slow  # trains
def test_basicsr_own_pipeline_distributed_on_cpu_then_resumes(tmp_path, monkeypatch, capsys):
    """BasicSR's parse_options with --launcher pytorch on a CPU-only machine (gloo, DDP without device_ids), then
    its own train_pipeline resuming on the CPU from a state our pipeline saved."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    for name, value in {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '1', 'MASTER_ADDR': '127.0.0.1',
                        'MASTER_PORT': str(port)}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yml = write_options(tmp_path, tiny_options('own', total_iter=2, save_every=2, validate_every=None))
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), '--launcher', 'pytorch'])
    opt, _ = basicsr.utils.options.parse_options(str(tmp_path), is_train=True)
    try:
        assert opt['dist'] and dist.get_backend() == 'gloo'
        from basicsr.models import build_model

        model = build_model(opt)
        assert isinstance(model.net_g, torch.nn.parallel.DistributedDataParallel)
    finally:
        dist.destroy_process_group()

    from hat_arch.train import main

    monkeypatch.delenv('WORLD_SIZE')
    with one_thread():
        assert main(['-opt', str(yml)]) == 0  # saves training_states/2.state
        write_options(tmp_path, tiny_options('own', total_iter=3, save_every=2, validate_every=None))
        monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(yml), '--auto_resume'])
        basicsr.train.train_pipeline(str(tmp_path))
    assert 'Set pretrain_network_g to ' in capsys.readouterr().out  # BasicSR's check_resume
    states = tmp_path / 'experiments' / 'own' / 'training_states'
    assert sorted(p.name for p in states.iterdir()) == ['2.state']
    assert (tmp_path / 'experiments' / 'own' / 'models' / 'net_g_latest.pth').is_file()


@pytest.mark.slow  # spawns processes
def test_an_image_unreadable_mid_run_is_named_in_one_line(tmp_path):
    """BasicSR's datasets crash on such an image with an AttributeError naming nothing; the fix names the file, also
    from a DataLoader worker, and leaves other errors alone."""
    from basicsr.data.single_image_dataset import SingleImageDataset
    from torch.utils.data import DataLoader

    from hat_arch.errors import HatError, user_message

    for folder, side in (('gt', 16), ('lq', 4)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / 'a.png'), np.full((side, side, 3), 128, np.uint8))
    opt = lambda phase='val': dict(dataroot_gt=str(tmp_path / 'gt'), dataroot_lq=str(tmp_path / 'lq'),
                                   io_backend={'type': 'disk'}, phase=phase, scale=4)
    paired, single = PairedImageDataset(opt()), SingleImageDataset(opt())
    assert paired[0]['gt'].shape == (3, 16, 16) and single[0]['lq'].shape == (3, 4, 4)
    lq = tmp_path / 'lq' / 'a.png'
    lq.write_bytes(b'not a png')
    for dataset in (paired, single):
        with pytest.raises(HatError, match=f'^cannot decode image {lq}: not an image, or a damaged one$'):
            dataset[0]
    with pytest.raises(HatError) as caught:
        next(iter(DataLoader(paired, num_workers=1)))
    assert user_message(caught.value) == f'cannot decode image {lq}: not an image, or a damaged one'
    lq.unlink()
    with pytest.raises(HatError, match=f'^cannot read image {lq}: '):
        paired[0]
    cv2.imwrite(str(lq), np.full((4, 4, 3), 128, np.uint8))
    training = PairedImageDataset(opt('train'))  # no gt_size: BasicSR's own KeyError, not masked
    with pytest.raises(KeyError, match='gt_size'):
        training[0]
