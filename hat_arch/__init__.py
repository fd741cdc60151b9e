"""hat_arch: HAT (Hybrid Attention Transformer) for BasicSR.

``import hat_arch`` makes BasicSR 1.4.2 work on today's stack and registers HAT's networks, models and datasets in
BasicSR's registries, so any BasicSR option file can say ``type: HAT``: at once if ``basicsr`` is loaded, else when
something first imports it (:func:`hat_arch.compat.apply`), so that ``import hat_arch`` costs no BasicSR start-up.
The network (``HAT``, ``HATConfig``), the named models (``list_models``, ``create_model``) and the Python API
(``load_model``, ``describe``, ``upscale``, ``lam``) are imported on first use.
"""
from hat_arch import process_setup

if process_setup.started_as_module_command():  # python -m hat_arch.train: set up before torch loads
    process_setup.prepare_process()

from hat_arch import compat  # noqa: E402

compat.apply()

from hat_arch.errors import HatError  # noqa: E402

__version__ = '0.1.0'

_LAZY = {'HAT': 'hat_arch.archs.hat_arch', 'HATConfig': 'hat_arch.archs.config',
         'list_models': 'hat_arch.archs.named_models', 'create_model': 'hat_arch.factory',
         'load_model': 'hat_arch.checkpoint', 'describe': 'hat_arch.checkpoint', 'upscale': 'hat_arch.api',
         'lam': 'hat_arch.attribution'}
__all__ = ['HatError', '__version__', *_LAZY]


def __getattr__(name: str):
    # The network and the API pull in torch (seconds): load them, and any submodule (hat_arch.progress, ...), on
    # first use, so that `import hat_arch` stays instant and `hat_arch.progress.progress_bar` works after it.
    import importlib
    import importlib.util

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if not name.startswith('_') and importlib.util.find_spec(f'{__name__}.{name}') is not None:
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
