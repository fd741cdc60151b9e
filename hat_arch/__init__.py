"""hat_arch: HAT (Hybrid Attention Transformer) for BasicSR.

``import hat_arch`` first makes BasicSR 1.4.2 work on today's stack, then registers HAT's networks, models and
datasets in BasicSR's registries, so any BasicSR option file can say ``type: HAT``.
"""
from hat_arch import compat

compat.apply()

from hat_arch import archs, data, models  # noqa: E402  (registration, after the fixes)
from hat_arch.archs.hat_arch import HAT  # noqa: E402

__version__ = '0.1.0'
__all__ = ['HAT', '__version__']
