"""BasicSR 1.4.2 (its last release) on today's PyTorch / torchvision / SciPy / Python, and where hat_arch changes it.

``import hat_arch`` changes BasicSR only where it could not import or would warn on today's stack, leaving its results
as they are; behaviour changes belong to hat_arch's own classes, and to the runs our commands launch. Every fix is
feature-detected (a BasicSR or torchvision that no longer needs it is left alone: the fixes of BasicSR functions look
for the faulty call in their source) and idempotent. Nothing in site-packages is edited.

Every place where hat_arch replaces or patches BasicSR's behaviour, with the symptom it fixes:

Patched at ``import hat_arch`` (here; see each function's comment):

- ``_BasicSRHook`` (installed by :func:`apply`, which ``import hat_arch`` calls): importing BasicSR takes seconds
  (torchvision, torch._dynamo, SciPy, all its networks), which ``import hat_arch`` and ``hat-sr upscale`` need not
  pay. So the fixes wait for the first ``import basicsr``, by anyone: the import fixes run before BasicSR's own code
  and, once its package has loaded, the other fixes and :func:`register` (HAT, HATModel, the Real-HAT models and
  the datasets join BasicSR's registries). With ``basicsr`` already loaded, :func:`apply` does all of it at once.
- :func:`import_torchvision`: with a torchvision made for another torch, ``import basicsr`` (and Ultralytics) dies in a
  40-line traceback (``operator torchvision::nms does not exist``); it is one line naming both versions and the fix.
- ``_fix_functional_tensor``: ``import basicsr`` dies on torchvision >= 0.17 (no ``functional_tensor``).
- ``_loose_version_for_basicsr``: ``import basicsr`` dies on Python >= 3.12 without setuptools (no ``distutils``),
  and with setuptools imports all of it and ``pkg_resources`` (0.4 s) for one class.
- ``_fix_scipy_filters``: ``import basicsr`` warns about ``scipy.ndimage.filters`` (and dies once SciPy drops it).
- ``_fix_loose_version_warning``: a DeprecationWarning on every forward of BasicSR's version checks (the same
  comparisons, on ``packaging``).
- ``_fix_meshgrid_warning``: a torch.meshgrid UserWarning from ``flow_warp`` (the same 'ij' grid, silenced).

Installed by our commands, for the runs they launch only (``basicsr train|test``, ``python -m hat_arch.train|test``;
:mod:`hat_arch.training.basicsr_overrides`, put back when the run ends); hat_arch's own models and datasets have the
same behaviour as their own methods (``HATModel``, which the Real-HAT models extend, and ``RealESRGANDataset``):

- ``BaseModel.save_network`` / ``save_training_state``: a kill or a full disk mid-save leaves a truncated newest
  checkpoint, and a failed save is only a warning (now atomic, :mod:`hat_arch.training.saves`).
- ``BaseModel.model_to_device``: distributed training on a CPU-only machine dies with "Torch not compiled with CUDA
  enabled" (:func:`hat_arch.training.distributed.model_to_device`).
- ``PairedImageDataset`` / ``SingleImageDataset.__getitem__``: an image unreadable mid-run stops the run with
  "AttributeError: 'NoneType' object has no attribute 'astype'", naming no file
  (:func:`hat_arch.data.checks.naming_unreadable_images`).
- ``imwrite`` in BasicSR's modules: validation and test images are written in place: a kill leaves a torn PNG, and a
  link planted at a result's name is written through (:func:`hat_arch.training.basicsr_overrides.atomic_image_writes`:
  the same pixels, written atomically; ``HATModel``'s validation uses it too).

Replaced elsewhere, through BasicSR's extension points:

- :func:`hat_arch.training.options.parse_options` calls BasicSR's ``parse_options`` with ``sys.argv`` swapped for the
  flags it understands (it reads only ``sys.argv``): ours adds checks and ``--local-rank``, and joins the process
  group itself (:func:`hat_arch.training.distributed.init_dist`: BasicSR's ``init_dist`` divides by the number of
  GPUs, zero on a CPU-only machine, and hard-codes nccl).
- :mod:`hat_arch.training.validation`: BasicSR validates on rank 0 only, DDP-wrapped; validation runs on the bare
  networks, sharded over the processes, with the per-shard best-metric record and log switched off
  (``_metrics_not_recorded``) so that only the dataset's mean is recorded.
- :mod:`hat_arch.training.saves` / :mod:`hat_arch.training.resume`: BasicSR's training state has no random
  states, sampler position, gradient scalers or best-metric record, so a resumed run differs from an uninterrupted
  one; ``save_checkpoint`` hands them to ``save_training_state`` (``training_state_extras``) and
  ``restore_training_state`` puts them back. :mod:`hat_arch.train` replaces ``basicsr.train.train_pipeline``, and
  its :func:`~hat_arch.training.resume.load_resume_state` BasicSR's (which maps the state onto CUDA, dying on a
  CPU-only machine, and with ``--auto_resume`` looks in ./experiments and may pick a truncated state).
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
so ``YOLO('yolo11n-hat-neck.yaml')`` "does not exist" where ``hat-yolo`` found hat_arch's file), and
:mod:`hat_arch.yolo.safe_load` turns on Ultralytics' weights-only loading (``ULTRALYTICS_SAFE_LOAD``) and makes its
shared ``torch_load`` weights-only (a ``.pt`` pickling ``os.system`` ran it; ``HAT_YOLO_UNSAFE_LOAD=1`` opts out by
name).
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


def import_torchvision() -> None:
    """Import torchvision (BasicSR and Ultralytics need it); a one-line HatError naming both versions and the fix when
    it was built for another torch."""
    # Symptom: a torchvision made for another torch release dies on import with a 40-line traceback ending in
    # "RuntimeError: operator torchvision::nms does not exist" (its compiled operators do not load into this torch).
    if 'torchvision' in sys.modules or importlib.util.find_spec('torchvision') is None:
        return
    try:
        importlib.import_module('torchvision')
    except RuntimeError as error:
        if 'torchvision::' not in str(error) and 'torchvision versions are incompatible' not in str(error):
            raise
        from hat_arch.errors import HatError

        raise HatError(torchvision_mismatch(str(error).strip().splitlines()[0])) from None


def torchvision_mismatch(symptom: str) -> str:
    """The one-line message for a torchvision that does not work with the installed torch, with the command that fixes
    it. torchvision 0.N is the release for torch 2.(N-15) (0.20 for 2.5); a pair of matching releases that still fails
    holds builds of two variants (CPU and CUDA): torchvision is reinstalled from the index of torch's build (+cpu)."""
    from importlib.metadata import version

    import torch
    from packaging.version import InvalidVersion, Version

    try:
        wanted, vision = Version(torch.__version__), Version(version('torchvision'))
    except InvalidVersion:
        return (f'torchvision {version("torchvision")} does not match torch {torch.__version__}: reinstall both '
                f'together ({symptom})')
    made_for = vision.minor - 15 if vision.major == 0 and vision.minor >= 15 else None
    pin = f"'torchvision==0.{wanted.minor + 15}.*'" if wanted.major == 2 else 'torchvision'
    index = f' --index-url https://download.pytorch.org/whl/{wanted.local}' if wanted.local else ''
    if wanted.major == 2 and made_for == wanted.minor:
        return (f'torchvision {vision} is the release for torch {torch.__version__} but its operators do not load: it '
                f'was built for another variant (CPU or CUDA); reinstall it for this one, e.g. pip install '
                f'--force-reinstall --no-deps {pin}{index} ({symptom})')
    release = f' (it is the release for torch 2.{made_for})' if made_for is not None else ''
    return (f'torchvision {vision} does not match torch {torch.__version__}{release}: install the torchvision made '
            f'for this torch, e.g. pip install {pin}{index} ({symptom})')


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
    """:func:`repoint`, with ``replacement`` marked as hat_arch's fix (:func:`_needs_fix` leaves it alone)."""
    replacement._hat_arch_fix = True
    repoint(original, replacement)


def repoint(original, replacement) -> None:
    """Point every loaded ``basicsr`` module attribute holding ``original`` (from-imports included) at
    ``replacement``."""
    for name, module in list(sys.modules.items()):
        if module is not None and (name == 'basicsr' or name.startswith('basicsr.')):
            for attribute, value in list(vars(module).items()):
                if value is original:
                    setattr(module, attribute, replacement)


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


def _import_fixes() -> None:
    """The fixes that must precede BasicSR's own code."""
    import_torchvision()
    _fix_functional_tensor()
    _fix_scipy_filters()


def register() -> None:
    """Fix BasicSR's warnings and register hat_arch's networks, models and datasets (``basicsr`` must be loaded)."""
    _fix_loose_version_warning()
    _fix_meshgrid_warning()
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
