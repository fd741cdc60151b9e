"""BasicSR 1.4.2 (its last release) on today's PyTorch / torchvision / Python.

Every fix is feature-detected (a BasicSR or torchvision that no longer needs it is left alone), idempotent, and applied
from :func:`apply` before anything imports ``basicsr``. Nothing in site-packages is edited.
"""
from __future__ import annotations

import importlib.util
import sys
import types


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


def _fix_distutils() -> None:
    # Symptom: on Python >= 3.12 `import basicsr` dies with "No module named 'distutils'"
    # (basicsr.archs.arch_util does `from distutils.version import LooseVersion`; distutils left the stdlib).
    if 'distutils.version' in sys.modules:
        return
    try:
        importlib.import_module('distutils.version')
        return
    except ImportError:
        pass
    from packaging.version import Version

    class LooseVersion:
        """The comparisons BasicSR makes (torch versions), on top of packaging's Version."""

        def __init__(self, vstring: str):
            self.vstring = str(vstring)
            self.version = Version(self.vstring.split('+')[0])

        def _other(self, other):
            return other.version if isinstance(other, LooseVersion) else Version(str(other).split('+')[0])

        def __lt__(self, other): return self.version < self._other(other)
        def __le__(self, other): return self.version <= self._other(other)
        def __gt__(self, other): return self.version > self._other(other)
        def __ge__(self, other): return self.version >= self._other(other)
        def __eq__(self, other): return self.version == self._other(other)
        def __repr__(self): return f'LooseVersion({self.vstring!r})'

    distutils = sys.modules.get('distutils') or types.ModuleType('distutils')
    version = types.ModuleType('distutils.version')
    version.LooseVersion = LooseVersion
    distutils.version = version
    sys.modules.setdefault('distutils', distutils)
    sys.modules['distutils.version'] = version


def apply() -> None:
    """Apply every fix that the installed BasicSR needs. Safe to call more than once."""
    _fix_functional_tensor()
    _fix_distutils()
