"""BasicSR 1.4.2 (its last release) on today's PyTorch / torchvision / Python, CPU-only or CUDA.

Every fix is feature-detected (a BasicSR or torchvision that no longer needs it is left alone: the fixes of BasicSR
functions look for the faulty call in their source) and idempotent. Nothing in site-packages is edited.

Every place where hat_arch replaces or patches BasicSR's behaviour, with the symptom it fixes:

Patched here (see each function's comment):

- ``_BasicSRHook`` (installed by :func:`apply`, which ``import hat_arch`` calls): importing BasicSR takes seconds
  (torchvision, torch._dynamo, SciPy, all its networks), which ``import hat_arch`` and ``hat-sr upscale`` need not
  pay. So the fixes wait for the first ``import basicsr``, by anyone: the import fixes run before BasicSR's own code
  and, once its package has loaded, the other fixes and :func:`register` (HAT, HATModel, the Real-HAT models and
  the datasets join BasicSR's registries). With ``basicsr`` already loaded, :func:`apply` does all of it at once.
- ``_fix_functional_tensor``: ``import basicsr`` dies on torchvision >= 0.17 (no ``functional_tensor``).
- ``_loose_version_for_basicsr``: ``import basicsr`` dies on Python >= 3.12 without setuptools (no ``distutils``),
  and with setuptools imports all of it and ``pkg_resources`` (0.4 s) for one class.
- ``_fix_loose_version_warning``: a DeprecationWarning on every forward of BasicSR's version checks.
- ``_fix_scipy_filters``: ``import basicsr`` warns about ``scipy.ndimage.filters``.
- ``_fix_load_resume_state``: resuming on a CPU-only machine dies (the state is mapped to CUDA).
- ``_fix_init_dist``: torchrun on a CPU-only machine dies in ``init_dist`` (division by zero GPUs).
- ``_fix_ddp_on_cpu``: distributed training on CPU dies in ``model_to_device`` (CUDA device ids).
- ``_fix_in_place_saves``: a kill or a full disk mid-save leaves a truncated newest checkpoint; ``save_network`` and
  ``save_training_state`` become the atomic ones of :mod:`hat_arch.training.checkpoint`.
- ``_fix_meshgrid_warning``: a torch.meshgrid UserWarning from ``flow_warp``.
- ``_fix_unreadable_images``: an image unreadable mid-run crashes with an AttributeError that names no file.

Replaced elsewhere, through BasicSR's extension points:

- :func:`hat_arch.training.options.parse_options` calls BasicSR's ``parse_options`` with ``sys.argv`` swapped for the
  flags it understands (it reads only ``sys.argv``): ours adds checks, ``--local-rank`` and launcher fixes.
- :mod:`hat_arch.training.validation`: BasicSR validates on rank 0 only, DDP-wrapped; validation runs on the bare
  networks, sharded over the processes, with the per-shard best-metric record and log switched off
  (``_metrics_not_recorded``) so that only the dataset's mean is recorded.
- :mod:`hat_arch.training.checkpoint` / :mod:`hat_arch.training.resume`: BasicSR's training state has no random
  states, sampler position, gradient scalers or best-metric record, so a resumed run differs from an uninterrupted
  one; ``save_checkpoint`` hands them to ``save_training_state`` (``training_state_extras``) and
  ``restore_training_state`` puts them back. :mod:`hat_arch.train` replaces ``basicsr.train.train_pipeline``.
- :class:`hat_arch.models.hat_model.HATModel` overrides ``load_network`` (one reader, one-line errors), ``test``
  (the tiling policy, any input size, self-ensemble) and ``optimize_parameters`` (mixed precision).
  It also drops the best-so-far record in a test (``_log_validation_metric_values``): a test log said
  ``Best: ... @ <run name> iter``.
- The Real-HAT models call ``super(RealESRGANModel, self).__init__`` / ``super(RealESRNetModel, self).__init__``,
  skipping the Real-ESRGAN ``__init__`` that only moves modules to CUDA (it dies on a CPU-only machine).
- :mod:`hat_arch.models.degradation`: ``ContiguousDiffJPEG`` (BasicSR's DiffJPEG returns a channels-last view that
  its ``filter2D`` cannot ``.view()`` on the CPU) and ``_dequeue_and_enqueue`` (the training-pair pool was allocated
  on CUDA, dying on a CPU-only machine).
- :class:`hat_arch.training.logs.MessageLogger`: BasicSR's ETA counts one iteration too few and shows
  ``-1 day, 23:59:59`` at the last one.

Ultralytics is adapted in one place, :func:`hat_arch.yolo.parser.register` (``import hat_arch.yolo``), never by
editing its files: ``ultralytics.nn.tasks.parse_model`` is wrapped (its YAML parser builds an unknown module with the
YAML's arguments only, so a ``HAT`` row could not get its input channels: the article's recipe edited
``parse_model``), ``HAT``/``HATBlock`` join ``tasks``' names (the parser looks modules up there), and HAT's classes
join torch's weights-only allow-list (Ultralytics' safe loading refused a ``best.pt`` holding them), and
``yaml_model_load`` (in ``tasks``, ``engine.model`` and ``ultralytics.nn``) is wrapped by
:mod:`hat_arch.yolo.scaled_names` (it strips the scale letter from the whole path, so 'yolov8n-hat-neck.yaml' in a
folder such as ``/tmp/tmp.Q4sGxc/`` "does not exist"; and it looks for a bare name only here and in its own ``cfg/``,
so ``YOLO('yolo11n-hat-neck.yaml')`` "does not exist" where ``hat-yolo`` found hat_arch's file).
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import sys
import types
import warnings
from contextlib import contextmanager
from typing import Iterator


def _fix_functional_tensor() -> None:
    # Symptom: `import basicsr` dies with "No module named 'torchvision.transforms.functional_tensor'"
    # (torchvision >= 0.17 removed the module; basicsr.data.degradations imports rgb_to_grayscale from it).
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules or importlib.util.find_spec('torchvision') is None:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional as tv_functional

    shim = types.ModuleType(name)
    shim.rgb_to_grayscale = tv_functional.rgb_to_grayscale
    sys.modules[name] = shim


class _LooseVersion:
    """distutils' LooseVersion for the comparisons BasicSR makes (library versions), on packaging's Version."""

    def __init__(self, vstring: str):
        self.vstring = str(vstring)
        self.version = self._parse(self.vstring)

    @staticmethod
    def _parse(vstring: str):
        from packaging.version import Version

        return Version(vstring.split('+')[0])

    def _other(self, other):
        return other.version if isinstance(other, _LooseVersion) else self._parse(str(other))

    def __lt__(self, other): return self.version < self._other(other)
    def __le__(self, other): return self.version <= self._other(other)
    def __gt__(self, other): return self.version > self._other(other)
    def __ge__(self, other): return self.version >= self._other(other)
    def __eq__(self, other): return self.version == self._other(other)
    def __repr__(self): return f'LooseVersion({self.vstring!r})'


@contextmanager
def _loose_version_for_basicsr() -> Iterator[None]:
    # Symptom: on Python >= 3.12 without setuptools, `import basicsr` dies with "No module named 'distutils'"; with
    # setuptools, `import distutils` imports all of setuptools and pkg_resources (0.4 s of every start-up).
    # basicsr.archs.arch_util takes only LooseVersion from it (`from distutils.version import LooseVersion`), which
    # _fix_loose_version_warning replaces anyway: while BasicSR is imported, distutils.version is that replacement,
    # and afterwards whatever it was (the real module is imported by whoever asks for it next).
    if 'basicsr.archs.arch_util' in sys.modules or 'distutils.version' in sys.modules:
        yield
        return
    shim = types.ModuleType('distutils.version')
    shim.LooseVersion = _LooseVersion
    sys.modules['distutils.version'] = shim  # a from-import finds it there without importing distutils itself
    try:
        yield
    finally:
        if sys.modules.get('distutils.version') is shim:
            del sys.modules['distutils.version']


def _fix_loose_version_warning() -> None:
    # Symptom: "DeprecationWarning: distutils Version classes are deprecated" on every forward of BasicSR's
    # DCNv2Pack (arch_util compares torchvision versions with setuptools' deprecated distutils LooseVersion).
    from basicsr.archs import arch_util

    if getattr(arch_util, 'LooseVersion', _LooseVersion) is not _LooseVersion:
        arch_util.LooseVersion = _LooseVersion


def _fix_scipy_filters() -> None:
    # Symptom: `import basicsr` warns "Please import `convolve` from the `scipy.ndimage` namespace; the
    # `scipy.ndimage.filters` namespace is deprecated" (basicsr.metrics.niqe), and will fail once SciPy 2.0 drops it.
    name = 'scipy.ndimage.filters'
    if getattr(sys.modules.get(name), '_hat_arch_fix', False) or importlib.util.find_spec('scipy') is None:
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            from scipy.ndimage.filters import convolve  # noqa: F401
            if not caught:
                return
        except ImportError:
            pass
    import scipy.ndimage

    shim = types.ModuleType(name)  # the same functions, from the public namespace
    shim.__dict__.update({k: v for k, v in vars(scipy.ndimage).items() if not k.startswith('_')})
    shim._hat_arch_fix = True
    sys.modules[name] = shim


def _needs_fix(function, faulty: str) -> bool:
    """Whether ``function`` is BasicSR's own (not already replaced) and its source contains ``faulty``."""
    if getattr(function, '_hat_arch_fix', False):
        return False
    try:
        return faulty in inspect.getsource(function)
    except (OSError, TypeError):  # no source shipped: assume the release we know
        return True


def _replace(original, replacement) -> None:
    """Point every ``basicsr`` module attribute holding ``original`` (from-imports included) at ``replacement``."""
    replacement._hat_arch_fix = True
    for name, module in list(sys.modules.items()):
        if module is not None and (name == 'basicsr' or name.startswith('basicsr.')):
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, replacement)


def _fix_load_resume_state() -> None:
    # Symptom: resuming (resume_state / --auto_resume) on a CPU-only machine dies with "Torch not compiled with CUDA
    # enabled" (load_resume_state maps the state onto torch.cuda.current_device()); --auto_resume also looks in
    # ./experiments instead of the experiment root and picks a truncated newest state.
    import basicsr.train

    from hat_arch.training.resume import load_resume_state

    if _needs_fix(basicsr.train.load_resume_state, 'torch.cuda.current_device()'):
        _replace(basicsr.train.load_resume_state, load_resume_state)


def _fix_init_dist() -> None:
    # Symptom: under torchrun on a CPU-only machine init_dist dies with "ZeroDivisionError: integer division or
    # modulo by zero" (torch.cuda.set_device(rank % num_gpus)); on CPU the hard-coded nccl backend fails as well.
    from basicsr.utils import dist_util

    from hat_arch.training.distributed import init_dist

    if _needs_fix(dist_util._init_dist_pytorch, '% num_gpus'):
        _replace(dist_util.init_dist, init_dist)


def _fix_ddp_on_cpu() -> None:
    # Symptom: distributed training on CPU dies in BaseModel.model_to_device with "Torch not compiled with CUDA
    # enabled" (DistributedDataParallel gets device_ids=[torch.cuda.current_device()], meaningless for CPU modules).
    from basicsr.models.base_model import BaseModel
    from torch.nn.parallel import DistributedDataParallel

    original = BaseModel.model_to_device
    if not _needs_fix(original, 'torch.cuda.current_device()'):
        return

    @functools.wraps(original)
    def model_to_device(self, net):
        if not self.opt['dist'] or self.device.type == 'cuda':
            return original(self, net)
        return DistributedDataParallel(net.to(self.device),
                                       find_unused_parameters=self.opt.get('find_unused_parameters', False))

    model_to_device._hat_arch_fix = True
    BaseModel.model_to_device = model_to_device


def _fix_in_place_saves() -> None:
    # Symptom: a kill or a full disk while saving leaves a truncated net_g_<iter>.pth / <iter>.state as the newest
    # checkpoint (BaseModel.save_network / save_training_state torch.save in place, and only warn when that fails).
    from basicsr.models.base_model import BaseModel

    from hat_arch.training import checkpoint

    for name in ('save_network', 'save_training_state'):
        original = getattr(BaseModel, name)
        if _needs_fix(original, 'torch.save(') and 'os.replace' not in inspect.getsource(original):
            replacement = getattr(checkpoint, name)
            replacement._hat_arch_fix = True
            setattr(BaseModel, name, replacement)


def _fix_meshgrid_warning() -> None:
    # Symptom: "UserWarning: torch.meshgrid: in an upcoming release, it will be required to pass the indexing
    # argument" from flow_warp (basicsr.archs.arch_util; used by the video and flow networks) on every call.
    from basicsr.archs import arch_util

    original = arch_util.flow_warp
    if not _needs_fix(original, 'torch.meshgrid(') or 'indexing' in inspect.getsource(original):
        return

    @functools.wraps(original)
    def flow_warp(*args, **kwargs):
        with warnings.catch_warnings():  # BasicSR relies on the 'ij' default, which is what it gets
            warnings.filterwarnings('ignore', message='torch.meshgrid: in an upcoming release')
            return original(*args, **kwargs)

    _replace(original, flow_warp)


def _fix_unreadable_images() -> None:
    # Symptom: an image that becomes unreadable during a run (deleted, or damaged while being copied; the launchers
    # check every image at start) stops training or testing with "AttributeError: 'NoneType' object has no attribute
    # 'astype'" deep in PairedImageDataset / SingleImageDataset, without naming the file.
    from basicsr.data.paired_image_dataset import PairedImageDataset
    from basicsr.data.single_image_dataset import SingleImageDataset

    for dataset in (PairedImageDataset, SingleImageDataset):
        original = dataset.__getitem__
        if not _needs_fix(original, 'imfrombytes('):
            continue

        @functools.wraps(original)
        def __getitem__(self, index, original=original):
            try:
                return original(self, index)
            except Exception:
                from hat_arch.data.checks import read_image  # (hat_arch.data registers datasets: not at fix time)

                # Name the file if reading one is what failed (read_image raises a one-line HatError); else re-raise.
                if self.file_client is not None:
                    entry = self.paths[index]
                    for key, path in entry.items() if isinstance(entry, dict) else [('lq_path', entry)]:
                        read_image(self.file_client, path, key.removesuffix('_path'))
                raise

        __getitem__._hat_arch_fix = True
        dataset.__getitem__ = __getitem__


def _import_fixes() -> None:
    """The fixes that must precede BasicSR's own code."""
    _fix_functional_tensor()
    _fix_scipy_filters()


def register() -> None:
    """Fix BasicSR's functions and register hat_arch's networks, models and datasets (``basicsr`` must be loaded)."""
    _fix_loose_version_warning()
    _fix_load_resume_state()
    _fix_init_dist()
    _fix_ddp_on_cpu()
    _fix_in_place_saves()
    _fix_meshgrid_warning()
    _fix_unreadable_images()
    from hat_arch import archs, data, models  # noqa: F401  (their modules register on import)
    from hat_arch.archs.registry import ARCH_REGISTRY

    ARCH_REGISTRY.hand_over()  # networks imported before basicsr (hat-sr upscale, load_model)


class _RegisteringLoader:
    """BasicSR's own loader, running its package code with the LooseVersion shim, then :func:`register`."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with _loose_version_for_basicsr():
            self.loader.exec_module(module)
        register()

    def __getattr__(self, name: str):  # get_source, get_resource_reader, ...: the original loader's
        return getattr(self.loader, name)


class _BasicSRHook:
    """A ``sys.meta_path`` finder that fires once, at the first ``import basicsr``, and then removes itself."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != 'basicsr':
            return None
        sys.meta_path.remove(self)
        _import_fixes()
        spec = importlib.util.find_spec('basicsr')
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


def apply() -> None:
    """Make BasicSR work and hold hat_arch's classes: now if ``basicsr`` is loaded, else at its first import.

    Safe to call more than once.
    """
    if 'basicsr' in sys.modules:
        _import_fixes()
        register()
    elif not any(isinstance(finder, _BasicSRHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BasicSRHook())
