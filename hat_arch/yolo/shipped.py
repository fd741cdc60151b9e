"""The model YAMLs shipped in ``hat_arch/yolo/cfg/``, found by their Ultralytics-style names (scale included)."""
from __future__ import annotations

import re
from pathlib import Path

from hat_arch.errors import HatError

CFG_DIR = Path(__file__).parent / 'cfg'
SCALE_IN_NAME = re.compile(r'(\d+)([nslmx])(.+)?$')  # Ultralytics' own pattern, applied here to the name only
SCALES = 'nsmlx'


def unscaled(path: Path) -> Path:
    """``path`` with the scale letter taken out of its file name: the file that holds every scale
    ('yolo11n-hat-neck.yaml' -> 'yolo11-hat-neck.yaml')."""
    return path.with_name(SCALE_IN_NAME.sub(r'\1\3', path.name))


def shipped_names() -> list[str]:
    """The shipped YAMLs' file names (each holds every scale), sorted."""
    return sorted(path.name for path in CFG_DIR.glob('*.yaml'))


def shipped_file(name: str | Path) -> Path | None:
    """The shipped file that holds the layers of ``name`` (a bare file name, scaled or not), or None."""
    path = Path(name)
    if path.name != str(name):  # a path with a folder names the user's file
        return None
    candidate = CFG_DIR / unscaled(path).name
    return candidate if candidate.is_file() else None


def model_yaml(name: str) -> str:
    """The path of a shipped model YAML by its Ultralytics-style name, scale included: 'yolo11n-hat-neck.yaml'
    (Ultralytics reads the scale from the name and, with ``import hat_arch.yolo``, the layers from
    'yolo11-hat-neck.yaml'). ``YOLO('yolo11n-hat-neck.yaml')`` finds the same file by itself."""
    name = name if name.endswith('.yaml') else f'{name}.yaml'
    if shipped_file(name) is None:
        raise HatError(f"no shipped model YAML {name!r}; shipped: {', '.join(shipped_names())} (with a scale "
                       f"{'/'.join(SCALES)} after the family's number, e.g. 'yolo11n-hat-neck.yaml')")
    return str(CFG_DIR / name)
