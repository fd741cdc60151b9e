"""Scaled model names for YAMLs in any folder and for the shipped ones by bare name: 'yolo11n-hat-neck.yaml' is
scale n of 'yolo11-hat-neck.yaml', here or in ``hat_arch/yolo/cfg/``.

Ultralytics' ``yaml_model_load`` finds the unscaled file by deleting the scale letter with a pattern applied to the
whole path, so a folder with a digit before n/s/m/l/x (``/tmp/tmp.Q4sGxc/``, ``envs/yolo11s/``) takes the match, the
name keeps its scale and loading fails with "'.../yolov8n-hat-neck.yaml' does not exist" (a random temporary
folder's name has such a pair about one time in eight). It also looks for bare names only in the working folder and
its own ``cfg/``, so ``YOLO('yolo11n-hat-neck.yaml')`` failed where ``hat-yolo`` found the file. :func:`patch` makes
the loader look at the file name only and, for a bare name with no such file here, in hat_arch's ``cfg/``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable

from hat_arch.yolo.shipped import shipped_file, unscaled

PATCHED = 'hat_arch_scaled_names'


def name_only(load: Callable[[Any], dict], guess_scale: Callable[[Any], str]) -> Callable[[Any], dict]:
    """``yaml_model_load`` that reads a scaled name's layers from its unscaled file in the same folder, or from the
    shipped file of a bare name that names no file here (a file of the user's wins)."""

    @functools.wraps(load)
    def yaml_model_load(path: Any) -> dict:
        path = Path(path)
        every_scale = unscaled(path)
        if path.is_file() or every_scale.is_file():
            source = path if path.is_file() or every_scale == path else every_scale
        else:
            source = shipped_file(path)
        if source is None or source == path:
            return load(path)
        d = load(source)
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
