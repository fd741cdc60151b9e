"""HAT as an attention block in Ultralytics YOLO models (``pip install 'hat_arch[yolo]'``).

``import hat_arch.yolo`` registers ``HAT`` for Ultralytics model YAMLs (``[-1, 1, HAT, []]``: input channels from the
layer before, same shape out), for ``torch.load(weights_only=True)``, and the shipped layouts by bare name
(``YOLO('yolo11n-hat-neck.yaml')``; :func:`model_yaml` gives their paths). It also makes Ultralytics load checkpoints
weights-only, no code from a file run (:mod:`hat_arch.yolo.safe_load`; ``HAT_YOLO_UNSAFE_LOAD=1`` opts out).
``hat-yolo`` is Ultralytics' ``yolo`` command with HAT registered.
"""
from __future__ import annotations

from hat_arch.errors import HatError

try:
    import ultralytics  # noqa: F401
except ImportError:
    raise HatError("HAT in YOLO needs Ultralytics, an optional extra: pip install 'hat_arch[yolo]'") from None

from hat_arch.yolo.block import HATBlock  # noqa: E402
from hat_arch.yolo.parser import register  # noqa: E402
from hat_arch.yolo.shipped import CFG_DIR, model_yaml, shipped_names  # noqa: E402

__all__ = ['HATBlock', 'register', 'model_yaml', 'shipped_names', 'CFG_DIR']


register()
