"""A small detection data set drawn from a seed, for smoke runs of training and comparisons without downloads.

Three classes that differ by shape, not colour (a filled box, a filled disc, an empty frame), one to four per
image, 10-45 % of the side, on noise; training and validation images come from different seeds. Labels are YOLO's
(``class xc yc w h``, normalised), the layout Ultralytics expects (``images/{train,val}``, ``labels/{train,val}``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

CLASSES = ('box', 'disc', 'frame')


def _draw(image: np.ndarray, cls: int, x: int, y: int, w: int, h: int, colour: tuple[int, int, int]) -> None:
    import cv2

    if cls == 0:
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, -1)
    elif cls == 1:
        cv2.ellipse(image, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)
    else:
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, max(2, min(w, h) // 6))


def _write_split(root: Path, split: str, count: int, size: int, seed: int) -> None:
    from hat_arch.image_io import write_image
    from hat_arch.atomic_write import write_text_atomic

    rng = np.random.default_rng(seed)
    images, labels = root / 'images' / split, root / 'labels' / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        image = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
        rows = []
        for _ in range(int(rng.integers(1, 5))):
            w, h = (int(v) for v in rng.integers(size // 10, size * 45 // 100, 2))
            x, y = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
            cls = int(rng.integers(0, len(CLASSES)))
            _draw(image, cls, x, y, w, h, tuple(int(c) for c in rng.integers(120, 256, 3)))
            rows.append(f'{cls} {(x + w / 2) / size:.6f} {(y + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}')
        write_image(images / f'{n:05d}.png', image, durable=False)  # drawn again from the seed if lost
        write_text_atomic(labels / f'{n:05d}.txt', '\n'.join(rows) + '\n', durable=False)


def write_dataset(root: str | Path, train: int = 96, val: int = 32, size: int = 128, seed: int = 0) -> Path:
    """Draw the data set into ``root`` (made if missing) and return its data YAML; the same arguments draw the same
    images, so a second call leaves a complete set as it is."""
    from hat_arch.atomic_write import write_text_atomic

    root = Path(root).resolve()
    data = root / 'data.yaml'
    if data.is_file():
        return data
    _write_split(root, 'train', train, size, seed)
    _write_split(root, 'val', val, size, seed + 1)
    names = ''.join(f'  {i}: {name}\n' for i, name in enumerate(CLASSES))
    write_text_atomic(data, f'# hat_arch synthetic set: {train} training, {val} validation images of {size} px, seed '
                     f'{seed}\npath: {root}\ntrain: images/train\nval: images/val\nnames:\n{names}')
    return data
