"""HAT as an attention block in Ultralytics YOLO models (``pip install 'hat_arch[yolo]'``).

``import hat_arch.yolo`` registers ``HAT`` for Ultralytics model YAMLs (``[-1, 1, HAT, []]``: input channels from the
layer before, same shape out) and for ``torch.load(weights_only=True)``; :func:`model_yaml` finds the shipped
configurations. It also makes Ultralytics load checkpoints weights-only, no code from a file run
(:mod:`hat_arch.yolo.safe_load`; ``HAT_YOLO_UNSAFE_LOAD=1`` opts out). ``hat-yolo`` is Ultralytics' ``yolo`` command
with HAT registered.
"""
from __future__ import annotations

from pathlib import Path

from hat_arch.errors import HatError

try:
    import ultralytics  # noqa: F401
except ImportError:
    raise HatError("HAT in YOLO needs Ultralytics, an optional extra: pip install 'hat_arch[yolo]'") from None

from hat_arch.yolo.block import HATBlock  # noqa: E402
from hat_arch.yolo.parser import register  # noqa: E402

CFG_DIR = Path(__file__).parent / 'cfg'
__all__ = ['HATBlock', 'register', 'model_yaml', 'CFG_DIR']


def model_yaml(name: str) -> str:
    """The path of a shipped model YAML by its Ultralytics-style name, scale included: 'yolov8n-hat-neck.yaml'
    (Ultralytics reads the scale from the name and the layers from 'yolov8-hat-neck.yaml')."""
    name = name if name.endswith('.yaml') else f'{name}.yaml'
    shipped = sorted(path.name for path in CFG_DIR.glob('*.yaml'))
    unscaled = name[:6] + name[7:] if name[:6] == 'yolov8' and name[6:7] in 'nsmlx' else name
    if unscaled not in shipped:
        raise HatError(f"no shipped model YAML {name!r}; shipped: {', '.join(shipped)} (with a scale n/s/m/l/x "
                       "after 'yolov8')")
    return str(CFG_DIR / name)


register()
