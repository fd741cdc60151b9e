"""Dataset preparation that BasicSR keeps in its git repository's scripts, not in its package.

Sub-images of large training images (DF2K), meta-info files, MATLAB-style bicubic LR images and ``GTmod{s}`` /
``LRbicx{s}`` benchmark folders. Each job runs over a folder with a process pool and a progress bar.
"""
from __future__ import annotations

import math
import os
import os.path as osp
import sys
from contextlib import nullcontext
from functools import partial
from multiprocessing import Pool
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from basicsr.data.transforms import mod_crop
from basicsr.utils import scandir
from basicsr.utils.matlab_functions import imresize
from tqdm import tqdm

from hat_arch.data.checks import image_shape
from hat_arch.errors import HatError
from hat_arch.image_io import IMAGE_EXTENSIONS, is_image_name, read_image, write_image

SCALES = (2, 3, 4)  # the scales basicsr prepare makes by default
PNG_COMPRESSION = 3  # BasicSR's scripts' choice: fast to write, about as small as 9 on photos


def list_images(folder: str, recursive: bool = False) -> list[str]:
    """Sorted image paths relative to ``folder``; HatError if it is missing or holds none."""
    if not osp.isdir(folder):
        raise HatError(f'folder {folder} does not exist')
    names = sorted(name for name in scandir(folder, recursive=recursive) if is_image_name(name))
    if not names:
        raise HatError(f'folder {folder} has no images ({", ".join(IMAGE_EXTENSIONS)})')
    return names


def check_images(folder: str, names: Sequence[str]) -> None:
    """HatError naming the first file of ``names`` whose header cannot be read, before any output is written (a run
    stopped half-way leaves a folder that the next run refuses without --overwrite)."""
    for name in tqdm(names, unit='image', desc='checking', leave=False, disable=len(names) < 1000):
        image_shape(osp.join(folder, name))


def new_folder(folder: str, overwrite: bool) -> None:
    """Create ``folder``; refuse to write into one that already holds files unless ``overwrite``."""
    if osp.isdir(folder) and any(os.scandir(folder)) and not overwrite:
        raise HatError(f'output folder {folder} is not empty; remove it or pass --overwrite')
    os.makedirs(folder, exist_ok=True)


def write(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    write_image(path, img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])


def _single_threaded_worker() -> None:
    # A forked worker that runs torch ops (imresize) with the parent's OpenMP pool can deadlock; one thread each
    # avoids it (as torch's DataLoader workers do), and the pool provides the parallelism.
    torch.set_num_threads(1)


def parallel(job: Callable, items: Sequence, workers: int, desc: str) -> list:
    """``job(item)`` for every item, in a pool of ``workers`` processes (in this one if 1), with a progress bar."""
    with tqdm(total=len(items), unit='image', desc=desc) as bar, \
            (Pool(workers, initializer=_single_threaded_worker) if workers > 1 else nullcontext()) as pool:
        results = []
        for result in (pool.imap(job, items, chunksize=4) if pool else map(job, items)):
            results.append(result)
            bar.update(1)
    return results


def crop_positions(size: int, crop_size: int, step: int, thresh_size: int) -> list[int]:
    """Crop starts along one side: every ``step``, plus one flush with the end if more than ``thresh_size`` is left."""
    if size < crop_size:
        return []
    starts = list(range(0, size - crop_size + 1, step))
    if size - (starts[-1] + crop_size) > thresh_size:
        starts.append(size - crop_size)
    return starts


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` of ``img`` cropped to a multiple of ``scale``, in its dtype."""
    lr = imresize(mod_crop(img, scale).astype(np.float64), 1 / scale)
    if np.issubdtype(img.dtype, np.integer):  # rounded and clipped, as MATLAB does for integer images
        info = np.iinfo(img.dtype)
        lr = np.clip(np.round(lr), info.min, info.max)
    return lr.astype(img.dtype)


class SubImageJob:
    """Cut one image into square sub-images every ``step`` pixels, named ``NAME_s001.png``, ``NAME_s002.png``, ...
    (BasicSR's naming).

    The image is first cropped to a multiple of ``modcrop``; with ``scale`` > 1 its MATLAB-bicubic x1/scale is cut
    instead, into ``crop_size/scale`` sub-images every ``step/scale``, so that they pair name by name with the
    sub-images of the same image made with ``scale`` 1 (use a ``modcrop`` that ``scale`` divides).
    """

    def __init__(self, src: str, dst: str, crop_size: int, step: int, thresh_size: int = 0, modcrop: int = 1,
                 scale: int = 1):
        if crop_size % scale or step % scale:
            raise HatError(f'crop size {crop_size} and step {step} must be multiples of the scale {scale}')
        self.src, self.dst, self.modcrop, self.scale = src, dst, modcrop, scale
        self.crop_size, self.step, self.thresh_size = crop_size // scale, step // scale, thresh_size // scale

    def __call__(self, name: str) -> int:
        img = mod_crop(read_image(osp.join(self.src, name)), self.modcrop)
        if self.scale > 1:
            img = bicubic_downscale(img, self.scale)
        h, w = img.shape[:2]
        base = osp.splitext(name)[0]
        index = 0
        for top in crop_positions(h, self.crop_size, self.step, self.thresh_size):
            for left in crop_positions(w, self.crop_size, self.step, self.thresh_size):
                index += 1
                patch = img[top:top + self.crop_size, left:left + self.crop_size]
                write(osp.join(self.dst, f'{base}_s{index:03d}.png'), np.ascontiguousarray(patch))
        return index


class BicubicJob:
    """Write the MATLAB-bicubic x1/scale of ``src/NAME`` to ``lr_dst/NAME.png``, and its mod-cropped GT to
    ``gt_dst/NAME.png`` if ``gt_dst`` is given."""

    def __init__(self, src: str, lr_dst: str, scale: int, gt_dst: str | None = None):
        self.src, self.lr_dst, self.scale, self.gt_dst = src, lr_dst, scale, gt_dst

    def __call__(self, name: str) -> None:
        img = read_image(osp.join(self.src, name))
        out_name = osp.splitext(name)[0] + '.png'
        if self.gt_dst is not None:
            write(osp.join(self.gt_dst, out_name), mod_crop(img, self.scale))
        write(osp.join(self.lr_dst, out_name), bicubic_downscale(img, self.scale))


def meta_info_line(folder: str, name: str) -> str:
    """``NAME (h,w,c)``: BasicSR's meta-info line for one image."""
    return f'{name} ({",".join(map(str, image_shape(osp.join(folder, name))))})'


def crop(src: str, dst: str, crop_size: int, step: int, thresh_size: int = 0, scale: int = 1, modcrop: int = 1,
         workers: int = 1, overwrite: bool = False) -> int:
    """Sub-images of every image in ``src`` into ``dst``; returns how many were written."""
    names = list_images(src)
    check_images(src, names)
    job = SubImageJob(src, dst, crop_size, step, thresh_size, modcrop, scale)
    new_folder(dst, overwrite)
    counts = parallel(job, names, workers, f'crop {osp.basename(dst.rstrip("/"))}')
    too_small = sum(1 for c in counts if c == 0)
    if too_small:
        print(f'{too_small} image(s) smaller than the crop size gave no sub-image', file=sys.stderr)
    return sum(counts)


def bicubic(src: str, dst: str, scale: int, gt_dst: str | None = None, workers: int = 1,
            overwrite: bool = False) -> None:
    """MATLAB-bicubic x1/scale of every image of ``src`` into ``dst`` (and the mod-cropped GT into ``gt_dst``)."""
    names = list_images(src)
    check_images(src, names)
    for folder in filter(None, (dst, gt_dst)):
        new_folder(folder, overwrite)
    parallel(BicubicJob(src, dst, scale, gt_dst), names, workers, f'x{scale} {osp.basename(dst)}')


def meta_info(folder: str, file: str, recursive: bool = False, workers: int = 1, overwrite: bool = False) -> int:
    """Write BasicSR's meta-info file for the images of ``folder``; returns the number of lines."""
    if osp.exists(file) and not overwrite:
        raise HatError(f'meta-info file {file} exists; remove it or pass --overwrite')
    try:
        names = list_images(folder, recursive)
    except HatError as error:
        if recursive or not osp.isdir(folder) or not any(map(is_image_name, scandir(folder, recursive=True))):
            raise
        raise HatError(f'{error}; its sub-folders have images: pass --recursive (ImageNet: one per class)') from None
    spaced = next((name for name in names if any(char.isspace() for char in name)), None)
    if spaced is not None:  # a meta-info line is 'NAME (h,w,c)': every reader cuts the name at its first space
        raise HatError(f'{osp.join(folder, spaced)}: a name with spaces cannot go in a meta-info file; rename it')
    lines = parallel(partial(meta_info_line, folder), names, workers, 'meta-info')
    os.makedirs(osp.dirname(file) or '.', exist_ok=True)
    with open(file, 'w') as f:
        f.writelines(line + '\n' for line in lines)
    return len(lines)


def df2k(root: str, hr: str = 'DF2K_HR', prefix: str = 'DF2K', scales=SCALES, crop_size: int = 480, step: int = 240,
         workers: int = 1, overwrite: bool = False) -> None:
    """HR sub-images, paired LR sub-images for every scale, and the meta-info file, under ``root``."""
    src = osp.join(root, hr)
    modcrop = math.lcm(*scales)  # HR and every LR then share the crop grid exactly
    crop(src, osp.join(root, f'{prefix}_HR_sub'), crop_size, step, modcrop=modcrop, workers=workers,
         overwrite=overwrite)
    for scale in scales:
        crop(src, osp.join(root, f'{prefix}_bicx{scale}_sub'), crop_size, step, scale=scale, modcrop=modcrop,
             workers=workers, overwrite=overwrite)
    meta_info(osp.join(root, f'{prefix}_HR_sub'), osp.join(root, f'meta_info_{prefix}sub_GT.txt'), workers=workers,
              overwrite=overwrite)
