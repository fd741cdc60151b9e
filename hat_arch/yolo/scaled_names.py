"""Scaled model names for YAMLs in any folder: 'yolov8n-hat-neck.yaml' is scale n of 'yolov8-hat-neck.yaml'.

Ultralytics' ``yaml_model_load`` finds the unscaled file by deleting the scale letter with a pattern applied to the
whole path, so a folder with a digit before n/s/m/l/x (``/tmp/tmp.Q4sGxc/``, ``envs/yolo11s/``) takes the match, the
name keeps its scale and loading fails with "'.../yolov8n-hat-neck.yaml' does not exist" (seen in CI: a random
temporary folder does this about one time in eight). :func:`patch` makes the loader look at the file name only.
"""
from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Callable

SCALE_IN_NAME = re.compile(r'(\d+)([nslmx])(.+)?$')  # Ultralytics' own pattern, applied here to the name only
PATCHED = 'hat_arch_scaled_names'


def unscaled(path: Path) -> Path:
    """``path`` with the scale letter taken out of its file name: the file that holds every scale."""
    return path.with_name(SCALE_IN_NAME.sub(r'\1\3', path.name))


def name_only(load: Callable[[Any], dict], guess_scale: Callable[[Any], str]) -> Callable[[Any], dict]:
    """``yaml_model_load`` that reads a scaled name's layers from its unscaled file in the same folder."""

    @functools.wraps(load)
    def yaml_model_load(path: Any) -> dict:
        path = Path(path)
        every_scale = unscaled(path)
        if path.is_file() or every_scale == path or not every_scale.is_file():
            return load(path)
        d = load(every_scale)
        d.update(scale=guess_scale(path), yaml_file=str(path))  # as Ultralytics records a scaled name
        return d

    setattr(yaml_model_load, PATCHED, True)
    return yaml_model_load


def patch(*modules: Any) -> None:
    """Wrap ``yaml_model_load`` where each of ``modules`` (``ultralytics.nn.tasks`` and the modules that imported it
    from there) holds it; idempotent, and a version without it or without ``guess_model_scale`` is left as it is."""
    from ultralytics.nn import tasks

    guess_scale = getattr(tasks, 'guess_model_scale', None)
    for module in modules:
        load = getattr(module, 'yaml_model_load', None)
        if callable(load) and callable(guess_scale) and not getattr(load, PATCHED, False):
            module.yaml_model_load = name_only(load, guess_scale)
