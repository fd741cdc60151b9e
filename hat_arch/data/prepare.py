"""Dataset preparation that BasicSR keeps in its git repository's scripts, not in its package.

Sub-images of large training images (DF2K), meta-info files, MATLAB-style bicubic LR images and ``GTmod{s}`` /
``LRbicx{s}`` benchmark folders. Each job runs over a folder with a process pool and a progress bar
(:func:`hat_arch.batch.each_file`), by the rule of ``hat-sr upscale``: every image is planned from its header first
(its outputs, whether it fits in memory and is large enough); an image that cannot be processed is reported by name
and the others are; outputs that exist are kept, so a second run finishes what the first could not; no output may
replace an input.
"""
from __future__ import annotations

import math
import os
import os.path as osp
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
from basicsr.data.transforms import mod_crop
from basicsr.utils import scandir
from basicsr.utils.matlab_functions import imresize
from tqdm import tqdm

from hat_arch.atomic_write import write_text_atomic
from hat_arch.batch import FileOutcome, each_file
from hat_arch.errors import HatError
from hat_arch.image_io import IMAGE_EXTENSIONS, ImageHeader, image_shape, is_image_name, read_image, write_image
from hat_arch.image_memory import check_image_memory, downscale_bytes
from hat_arch.output_checks import check_outputs

SCALES = (2, 3, 4)  # the scales basicsr prepare makes by default
PNG_COMPRESSION = 3  # BasicSR's scripts' choice: fast to write, about as small as 9 on photos
LISTED_FAILURES = 5  # images a one-line error names; it counts the rest


def list_images(folder: str, recursive: bool = False) -> list[str]:
    """Sorted image paths relative to ``folder``; HatError if it is missing or holds none."""
    if not osp.isdir(folder):
        raise HatError(f'folder {folder} does not exist')
    names = sorted(name for name in scandir(folder, recursive=recursive) if is_image_name(name))
    if not names:
        raise HatError(f'folder {folder} has no images ({", ".join(IMAGE_EXTENSIONS)})')
    return names


def check_output_folder(folder: str, src: str) -> None:
    """HatError if ``folder`` exists as something else than a folder (it is created with its first file), or is the
    input folder ``src``: the outputs would sit among the inputs, and the next run would read them as inputs (folders
    are read without their sub-folders, so one inside the other is fine)."""
    if osp.exists(folder) and not osp.isdir(folder):
        raise HatError(f'output folder {folder} is a file')
    if Path(folder).resolve() == Path(src).resolve():
        raise HatError(f'output folder {folder} is the input folder {src}: its outputs would be read as inputs by the '
                       'next run; choose another output folder')


def write(path: str, img: np.ndarray) -> None:
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    # not fsynced: thousands of crops, each made again by a rerun (outputs that exist are kept)
    write_image(path, img, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION], durable=False)


def with_bar(outcomes: Iterator[FileOutcome], total: int, desc: str, **options) -> Iterator[FileOutcome]:
    """``outcomes`` as they come, counted on a progress bar (tqdm's ``options``)."""
    with tqdm(total=total, unit='image', desc=desc, **options) as bar:
        for outcome in outcomes:
            bar.update(1)
            yield outcome


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


def check_downscalable(path: str, header: ImageHeader, scale: int) -> None:
    """HatError if the image is too small for :func:`bicubic_downscale` by ``scale``: BasicSR's ``imresize`` needs
    at least 2 output pixels a side, and fails with a bare RuntimeError below that."""
    least = 2 * scale
    if scale > 1 and min(header.width, header.height) < least:
        raise HatError(f'{path} is {header.width}x{header.height}: too small to downscale x{scale} (MATLAB bicubic '
                       f'needs at least {least}x{least})')


class SubImageJob:
    """Cut one image into square sub-images every ``step`` pixels, named ``NAME_s001.png``, ``NAME_s002.png``, ...
    (BasicSR's naming).

    The image is first cropped to a multiple of ``modcrop``; with ``scale`` > 1 its MATLAB-bicubic x1/scale is cut
    instead, into ``crop_size/scale`` sub-images every ``step/scale``, so that they pair name by name with the
    sub-images of the same image made with ``scale`` 1 (use a ``modcrop`` that ``scale`` divides). Sub-images that
    exist are kept unless ``overwrite``.
    """

    def __init__(self, src: str, dst: str, crop_size: int, step: int, thresh_size: int = 0, modcrop: int = 1,
                 scale: int = 1, overwrite: bool = False):
        if crop_size % scale or step % scale:
            raise HatError(f'crop size {crop_size} and step {step} must be multiples of the scale {scale}')
        self.src, self.dst, self.modcrop, self.scale, self.overwrite = src, dst, modcrop, scale, overwrite
        self.crop_size, self.step, self.thresh_size = crop_size // scale, step // scale, thresh_size // scale
        self.task = f'crop x1/{scale}' if scale > 1 else 'crop'

    def needed(self, header: ImageHeader) -> int:
        return downscale_bytes(header) if self.scale > 1 else header.decoded_bytes

    def targets(self, name: str, header: ImageHeader) -> list[str]:
        """The sub-images of an image of ``header``'s size (none if it is smaller than the crop); HatError if it is
        too small to downscale."""
        sides = [side - side % self.modcrop for side in (header.height, header.width)]
        if min(sides) < self.crop_size * self.scale:
            return []
        check_downscalable(osp.join(self.src, name), header, self.scale)
        count = 1
        for side in sides:
            count *= len(crop_positions(side // self.scale, self.crop_size, self.step, self.thresh_size))
        return [self._target(name, index) for index in range(1, count + 1)]

    def _target(self, name: str, index: int) -> str:
        return osp.join(self.dst, f'{osp.splitext(name)[0]}_s{index:03d}.png')

    def __call__(self, name: str) -> int:
        img = mod_crop(read_image(osp.join(self.src, name)), self.modcrop)
        if self.scale > 1:
            img = bicubic_downscale(img, self.scale)
        h, w = img.shape[:2]
        index = written = 0
        for top in crop_positions(h, self.crop_size, self.step, self.thresh_size):
            for left in crop_positions(w, self.crop_size, self.step, self.thresh_size):
                index += 1
                target = self._target(name, index)
                if self.overwrite or not osp.exists(target):
                    patch = img[top:top + self.crop_size, left:left + self.crop_size]
                    write(target, np.ascontiguousarray(patch))
                    written += 1
        return written


class BicubicJob:
    """Write the MATLAB-bicubic x1/scale of ``src/NAME`` to ``lr_dst/NAME.png``, and its mod-cropped GT to
    ``gt_dst/NAME.png`` if ``gt_dst`` is given; outputs that exist are kept unless ``overwrite``."""

    def __init__(self, src: str, lr_dst: str, scale: int, gt_dst: str | None = None, overwrite: bool = False):
        self.src, self.lr_dst, self.scale, self.gt_dst, self.overwrite = src, lr_dst, scale, gt_dst, overwrite
        self.task = f'downscale x{scale}'

    def needed(self, header: ImageHeader) -> int:
        return downscale_bytes(header)

    def targets(self, name: str, header: ImageHeader) -> list[str]:
        check_downscalable(osp.join(self.src, name), header, self.scale)
        out_name = osp.splitext(name)[0] + '.png'
        return [osp.join(folder, out_name) for folder in (self.lr_dst, self.gt_dst) if folder is not None]

    def __call__(self, name: str) -> int:
        img = read_image(osp.join(self.src, name))
        out_name = osp.splitext(name)[0] + '.png'
        outputs = [(self.lr_dst, lambda: bicubic_downscale(img, self.scale))]
        if self.gt_dst is not None:
            outputs.append((self.gt_dst, lambda: mod_crop(img, self.scale)))
        written = 0
        for folder, make in outputs:
            target = osp.join(folder, out_name)
            if self.overwrite or not osp.exists(target):
                write(target, make())
                written += 1
        return written


@dataclass
class Report:
    """What a preparation run did: files written, images skipped (all their outputs existed), images too small to
    give any output, and one line for each image that failed."""
    written: int = 0
    skipped: int = 0
    no_output: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def run_job(job, names: Sequence[str], workers: int, desc: str, max_pixels: int | None = None) -> Report:
    """Plan every image of ``job.src`` from its header, check the planned outputs against the inputs, then process
    the images whose outputs are not all there yet, in ``workers`` processes."""
    report = Report()
    plans: list[tuple[str, list[str]]] = []

    def plan(name: str) -> list[str]:
        path = osp.join(job.src, name)
        header = check_image_memory(path, job.needed, job.task, max_pixels) or _decoded_header(path)
        return job.targets(name, header)

    planned = each_file(names, plan, partial(osp.join, job.src))
    for outcome in with_bar(planned, len(names), 'checking', leave=False, disable=len(names) < 1000):
        if outcome.failed:
            report.failures.append(outcome.error)
        elif outcome.result:
            plans.append((outcome.item, outcome.result))
        else:
            report.no_output.append(outcome.item)
    check_outputs(((Path(job.src, name), Path(target)) for name, targets in plans for target in targets),
                  'choose another output folder')
    todo = [name for name, targets in plans if job.overwrite or not all(map(osp.exists, targets))]
    report.skipped = len(plans) - len(todo)
    for outcome in with_bar(each_file(todo, job, partial(osp.join, job.src), workers=workers), len(todo), desc):
        if outcome.failed:
            report.failures.append(outcome.error)
        else:
            report.written += outcome.result
    return report


def _decoded_header(path: str) -> ImageHeader:
    """The size of an image that Pillow cannot parse, from OpenCV (which decodes it); HatError if neither can."""
    height, width, channels = image_shape(path)
    return ImageHeader(width, height, mode='', bands=channels)


def meta_info_line(folder: str, name: str) -> str:
    """``NAME (h,w,c)``: BasicSR's meta-info line for one image."""
    return f'{name} ({",".join(map(str, image_shape(osp.join(folder, name))))})'


def crop(src: str, dst: str, crop_size: int, step: int, thresh_size: int = 0, scale: int = 1, modcrop: int = 1,
         workers: int = 1, overwrite: bool = False, max_pixels: int | None = None) -> Report:
    """Sub-images of every image in ``src`` into ``dst``."""
    job = SubImageJob(src, dst, crop_size, step, thresh_size, modcrop, scale, overwrite)
    names = list_images(src)
    check_output_folder(dst, src)
    return run_job(job, names, workers, f'crop {osp.basename(dst.rstrip("/"))}', max_pixels)


def bicubic(src: str, dst: str, scale: int, gt_dst: str | None = None, workers: int = 1, overwrite: bool = False,
            max_pixels: int | None = None) -> Report:
    """MATLAB-bicubic x1/scale of every image of ``src`` into ``dst`` (and the mod-cropped GT into ``gt_dst``)."""
    names = list_images(src)
    for folder in filter(None, (dst, gt_dst)):
        check_output_folder(folder, src)
    return run_job(BicubicJob(src, dst, scale, gt_dst, overwrite), names, workers, f'x{scale} {osp.basename(dst)}',
                   max_pixels)


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
    lines, failures = [], []
    for outcome in with_bar(each_file(names, partial(meta_info_line, folder), partial(osp.join, folder),
                                      workers=workers), len(names), 'meta-info'):
        (failures if outcome.failed else lines).append(outcome.error or outcome.result)
    if failures:
        more = f'; and {len(failures) - LISTED_FAILURES} more' if len(failures) > LISTED_FAILURES else ''
        raise HatError(f'meta-info file {file} not written: {len(failures)} of the images cannot be read: '
                       + '; '.join(failures[:LISTED_FAILURES]) + more)
    os.makedirs(osp.dirname(file) or '.', exist_ok=True)
    write_text_atomic(file, ''.join(line + '\n' for line in lines))
    return len(lines)


def df2k(root: str, hr: str = 'DF2K_HR', prefix: str = 'DF2K', scales=SCALES, crop_size: int = 480, step: int = 240,
         workers: int = 1, overwrite: bool = False, max_pixels: int | None = None) -> dict[str, Report]:
    """HR sub-images and paired LR sub-images for every scale under ``root``, each folder's :class:`Report` by its
    path; then the meta-info file, only once every image gave its sub-images (else a re-run makes it)."""
    src = osp.join(root, hr)
    modcrop = math.lcm(*scales)  # HR and every LR then share the crop grid exactly
    reports = {}
    for scale in (1, *scales):
        folder = osp.join(root, f'{prefix}_HR_sub' if scale == 1 else f'{prefix}_bicx{scale}_sub')
        reports[folder] = crop(src, folder, crop_size, step, scale=scale, modcrop=modcrop, workers=workers,
                               overwrite=overwrite, max_pixels=max_pixels)
    if not any(report.failures for report in reports.values()):
        meta_info(osp.join(root, f'{prefix}_HR_sub'), meta_info_file(root, prefix), workers=workers,
                  overwrite=overwrite)
    return reports


def meta_info_file(root: str, prefix: str = 'DF2K') -> str:
    """Where :func:`df2k` writes the meta-info file of the HR sub-images."""
    return osp.join(root, f'meta_info_{prefix}sub_GT.txt')
