"""Fixtures for the YOLO integration: a tiny detection data set written by the test, Ultralytics kept offline."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

# Ultralytics reads these when it is imported (before any fixture could set them), and the processes the tests
# start inherit them: no online checks, no pip install of a missing requirement, quieter logs.
OFFLINE_ENV = {'YOLO_OFFLINE': '1', 'YOLO_AUTOINSTALL': 'False', 'YOLO_VERBOSE': 'False'}
os.environ.update(OFFLINE_ENV)

# Arguments with which training, validation and export need nothing from the network: no plots (they fetch a
# font), no ONNX simplification (onnxslim is no requirement); on the CPU, Ultralytics' AMP check (which downloads a
# model) does not run.
OFFLINE_ARGS = {'plots': False, 'device': 'cpu', 'workers': 0}


def write_boxes_dataset(root: Path, count: int = 8, size: int = 96) -> Path:
    """``count`` images of bright rectangles on noise with their YOLO labels ('class xc yc w h', normalised) and the
    data YAML naming them; returns the YAML's path. The same images serve for training and validation."""
    import cv2

    rng = np.random.default_rng(0)
    images, labels = root / 'images' / 'train', root / 'labels' / 'train'
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for n in range(count):
        image = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
        rows = []
        for _ in range(2):
            w, h = rng.integers(size // 5, size // 2, 2)
            x, y = rng.integers(0, size - w), rng.integers(0, size - h)
            cls = int(rng.integers(0, 2))
            image[y:y + h, x:x + w] = (255, 80, 80) if cls else (80, 255, 80)
            rows.append(f'{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}')
        cv2.imwrite(str(images / f'{n}.png'), image)
        (labels / f'{n}.txt').write_text('\n'.join(rows) + '\n')
    data = root / 'boxes.yaml'
    data.write_text(f'path: {root}\ntrain: images/train\nval: images/train\nnames:\n  0: green\n  1: red\n')
    return data


@pytest.fixture(scope='session')
def boxes_data(tmp_path_factory) -> Path:
    return write_boxes_dataset(tmp_path_factory.mktemp('boxes'))
