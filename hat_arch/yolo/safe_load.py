"""YOLO checkpoints load without running code: every ``torch.load`` Ultralytics makes is ``weights_only`` with its
allow-list of known classes (HAT's among them), unless the user asks for unsafe loading by name.

Ultralytics unpickles ``.pt`` files with ``weights_only=False`` unless ``ULTRALYTICS_SAFE_LOAD=1``: a checkpoint from
a stranger runs whatever code its pickle names. :func:`patch` turns Ultralytics' own safe loading on for this process
and the processes it starts (model loading, and YAML activations built without ``eval``), and makes the one loader
all its readers share (``ultralytics.utils.patches.torch_load``: training resume, ``strip_optimizer``, caches)
weights-only too. A refused file is one line naming it. ``HAT_YOLO_UNSAFE_LOAD=1`` leaves Ultralytics' loading as it
is, for files the user trusts fully.
"""
from __future__ import annotations

import contextlib
import functools
import os
import pickle
import sys
from typing import Any, Callable

from hat_arch.checkpoint import refused_object
from hat_arch.errors import HatError

UNSAFE_SWITCH = 'HAT_YOLO_UNSAFE_LOAD'
_TRUE = ('1', 'true', 'yes', 'on')


def unsafe_load_requested() -> bool:
    """Whether the user asked for Ultralytics' unsafe (code-running) loading: ``HAT_YOLO_UNSAFE_LOAD=1``."""
    return os.environ.get(UNSAFE_SWITCH, '').strip().lower() in _TRUE


def patch(tasks: Any) -> None:
    """Make Ultralytics load checkpoints weights-only (see the module's text); idempotent; nothing with the opt-in."""
    if unsafe_load_requested():
        return
    safe_load = getattr(tasks, '_SafeLoad', None)
    if safe_load is None or not getattr(safe_load, 'SUPPORTED', False) or not hasattr(tasks, 'SAFE_LOAD'):
        import torch
        import ultralytics

        raise HatError(f'Ultralytics {ultralytics.__version__} with torch {torch.__version__} cannot load '
                       'checkpoints weights-only (no code run), so hat_arch.yolo refuses to load any: upgrade '
                       f'ultralytics and torch, or set {UNSAFE_SWITCH}=1 to load only files you trust fully')
    import ultralytics.utils
    from ultralytics.utils import patches

    os.environ['ULTRALYTICS_SAFE_LOAD'] = '1'  # the processes Ultralytics starts (DDP training) read it
    ultralytics.utils.SAFE_LOAD = tasks.SAFE_LOAD = True
    original = patches.torch_load
    if getattr(original, 'hat_arch_weights_only', False):
        return
    safe = weights_only_loader(original, safe_load.loading)
    for name, module in list(sys.modules.items()):  # the modules that imported it by name
        if name.split('.')[0] == 'ultralytics' and getattr(module, 'torch_load', None) is original:
            module.torch_load = safe


def weights_only_loader(torch_load: Callable, allow_list: Callable) -> Callable:
    """``torch_load`` with ``weights_only=True``, the globals a file needs registered from Ultralytics' allow-list
    (``allow_list(file)``), and a refusal of code as one :class:`HatError` naming the file."""

    @functools.wraps(torch_load)
    def load(file, *args, **kwargs):
        kwargs['weights_only'] = True
        allowed = allow_list(file) if isinstance(file, (str, os.PathLike)) else contextlib.nullcontext()
        try:
            with allowed:
                return torch_load(file, *args, **kwargs)
        except pickle.UnpicklingError as error:
            code = refused_object(error)
            if code is None:
                raise
            raise HatError(f'YOLO checkpoint {os.fspath(file) if isinstance(file, os.PathLike) else file} was '
                           f'refused: loading it would run code (it names the Python object {code}); '
                           f"{UNSAFE_SWITCH}=1 loads a file you trust with Ultralytics' unsafe loading") from None

    load.hat_arch_weights_only = True
    return load
