"""An extension changes only what it adds: in a process that imported hat_arch, BasicSR's own classes behave as stock.

Another project imports hat_arch to use ``type: HAT`` in its own pipeline; its ``SRModel`` with a stock network must
save, place devices and load data exactly as without hat_arch. The slow case runs the same probe in two fresh
interpreters, one that imported hat_arch and one that did not, and compares everything they saw.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.single_image_dataset import SingleImageDataset
from basicsr.models.base_model import BaseModel

from tests.conftest import ROOT

# What `import basicsr` needs on today's torchvision and Python without hat_arch (see hat_arch.compat), made here with
# nothing from hat_arch.
STOCK_IMPORTABLE = '''
import sys, types
from torchvision.transforms import functional
sys.modules['torchvision.transforms.functional_tensor'] = types.SimpleNamespace(
    rgb_to_grayscale=functional.rgb_to_grayscale)
try:
    import distutils.version
except ImportError:  # Python >= 3.12 without setuptools
    from packaging.version import Version
    sys.modules['distutils.version'] = types.SimpleNamespace(LooseVersion=lambda v: Version(str(v).split('+')[0]))
'''
# Saves a tiny MSRResNet with SRModel, into its folder and into a missing one; puts a network on "distributed"
# devices; reads a PairedImageDataset item, then one whose LR image is damaged. Prints what each gave, as JSON.
PROBE = '''
import json, os, sys, tempfile, time
import cv2, numpy as np, torch
time.sleep = lambda seconds: None  # BasicSR retries a failed save three times, a second apart
from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.data.single_image_dataset import SingleImageDataset
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
import basicsr.models.sr_model, basicsr.train, basicsr.utils.options

def outcome(call):
    try:
        value = call()
    except Exception as error:
        return f'raised {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}'
    return value

seen = {'hat_arch imported': 'hat_arch' in sys.modules}
seen['functions'] = {name: f'{f.__module__}.{f.__qualname__}' for name, f in {
    'save_network': BaseModel.save_network, 'save_training_state': BaseModel.save_training_state,
    'model_to_device': BaseModel.model_to_device, 'load_network': BaseModel.load_network,
    'paired item': PairedImageDataset.__getitem__, 'single item': SingleImageDataset.__getitem__,
    'load_resume_state': basicsr.train.load_resume_state, 'init_dist': basicsr.utils.options.init_dist,
    'imwrite': basicsr.models.sr_model.imwrite}.items()}
folder = tempfile.mkdtemp()
torch.manual_seed(0)
opt = {'is_train': False, 'num_gpu': 0, 'dist': False, 'scale': 4, 'path': {'models': folder},
       'network_g': {'type': 'MSRResNet', 'num_feat': 4, 'num_block': 1, 'upscale': 4}}
model = SRModel(opt)
seen['network'] = type(model.net_g).__name__
model.save_network(model.net_g, 'net_g', 5)
saved = torch.load(os.path.join(folder, 'net_g_5.pth'), weights_only=True)
seen['saved'] = {key: {name: tensor.double().sum().item() for name, tensor in state.items()}
                 for key, state in saved.items()}
seen['folder'] = sorted(os.listdir(folder))
opt['path']['models'] = os.path.join(folder, 'missing')
seen['save into a missing folder'] = outcome(lambda: model.save_network(model.net_g, 'net_g', 6))
opt['dist'] = True
seen['distributed model_to_device'] = outcome(lambda: type(model.model_to_device(torch.nn.Conv2d(1, 1, 1))).__name__)
for name, side in (('gt', 16), ('lq', 4)):
    os.mkdir(os.path.join(folder, name))
    cv2.imwrite(os.path.join(folder, name, 'a.png'), np.arange(side * side * 3, dtype=np.uint8).reshape(side, side, 3))
dataset = PairedImageDataset({'dataroot_gt': os.path.join(folder, 'gt'), 'dataroot_lq': os.path.join(folder, 'lq'),
                              'io_backend': {'type': 'disk'}, 'phase': 'val', 'scale': 4})
item = dataset[0]
seen['item'] = {key: [list(value.shape), value.double().sum().item()] if torch.is_tensor(value)
                else os.path.relpath(value, folder) for key, value in item.items()}
with open(os.path.join(folder, 'lq', 'a.png'), 'wb') as damaged:
    damaged.write(b'not a png')
seen['damaged item'] = outcome(lambda: dataset[0])
print('SEEN', json.dumps(seen, sort_keys=True))
'''


def probe(preamble: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    run = subprocess.run([sys.executable, '-c', preamble + PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    return json.loads(next(line for line in run.stdout.splitlines() if line.startswith('SEEN '))[5:])


@pytest.mark.slow  # spawns processes
def test_a_stock_srmodel_and_dataset_behave_as_without_hat_arch():
    stock, with_hat_arch = probe(STOCK_IMPORTABLE), probe('import hat_arch\n')
    assert not stock.pop('hat_arch imported') and with_hat_arch.pop('hat_arch imported')
    # The probe sees BasicSR's own behaviour, including what hat_arch's commands change in their runs:
    assert stock['save into a missing folder'] is None  # a warning, not an error
    assert stock['distributed model_to_device'].startswith('raised ')  # CUDA device ids on a CPU-only machine
    assert stock['damaged item'].startswith('raised AttributeError')  # names no file
    assert stock['folder'] == ['net_g_5.pth'] and stock['network'] == 'MSRResNet'
    assert stock['functions']['imwrite'] == 'basicsr.utils.img_util.imwrite'  # in place
    assert with_hat_arch == stock


def test_importing_hat_arch_leaves_basicsrs_methods_in_place():
    # (The tests import hat_arch first: tests/conftest.py.) Each method hat_arch's commands replace during their runs
    # is BasicSR's own outside them.
    for cls in (BaseModel, PairedImageDataset, SingleImageDataset):
        for name in ('save_network', 'save_training_state', 'model_to_device', '__getitem__'):
            if name in vars(cls):
                assert vars(cls)[name].__module__.startswith('basicsr.'), (cls, name)
    import basicsr.models.sr_model

    assert basicsr.models.sr_model.imwrite.__module__ == 'basicsr.utils.img_util'
