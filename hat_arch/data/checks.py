"""Checks of the data an option file names, made before training/testing starts, each failing with one line.

BasicSR finds a missing folder, an unpaired file or a too-small image only inside a data-loader worker, as an
assertion or an ``AttributeError`` on ``None`` deep in a traceback; :func:`check_dataset_options` finds them first and
says which option key, folder or file is at fault: all of them at once (:mod:`hat_arch.problems`).
"""
from __future__ import annotations

import functools
import os
import os.path as osp
import re
import stat
from typing import Callable

from basicsr.utils import scandir
from tqdm import tqdm

from hat_arch.archs.config import HATConfig
from hat_arch.errors import HatError, did_you_mean
from hat_arch.image_io import ImageHeader, image_shape, is_image_name, read_dataset_image
from hat_arch.inference import forward_values_per_pixel
from hat_arch.image_memory import FLOAT64, check_image_memory, upscale_bytes
from hat_arch.problems import Problems

_SHAPE = re.compile(r'\((\d+),\s*(\d+)(?:,\s*\d+)?\)')
# Datasets that pair an LR folder with a GT folder file by file (BasicSR's PairedImageDataset logic).
PAIRED_TYPES = {'PairedImageDataset'}
# Keys the dataset classes read without a default, always and for training: BasicSR's KeyError would come from
# inside the dataset, after the network has been built and printed.
REQUIRED_KEYS = {
    'PairedImageDataset': (('dataroot_gt', 'dataroot_lq', 'io_backend'), ('gt_size', 'use_hflip', 'use_rot')),
    'SingleImageDataset': (('dataroot_lq', 'io_backend'), ()),
    'ImageNetPairedDataset': (('dataroot_gt', 'io_backend'), ('gt_size', 'use_hflip', 'use_rot')),
    'RealESRGANDataset': (('dataroot_gt', 'io_backend'), ('use_hflip', 'use_rot')),
}


# What a path that is not a regular file or folder is, for the messages.
FILE_KINDS = ((stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
              (stat.S_ISFIFO, 'a FIFO (named pipe)'), (stat.S_ISSOCK, 'a socket'))
# Metrics' float64 maps per output value: both images converted, SSIM's means, variances and covariance, its map.
METRIC_MAPS = 10


def path_kind(path: str) -> str:
    """What is at ``path``, for a message: 'a folder', 'a file', 'a character device', ..., or 'nothing'."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return 'nothing'
    if stat.S_ISDIR(mode):
        return 'a folder'
    if stat.S_ISREG(mode):
        return 'a file'
    return next((kind for test, kind in FILE_KINDS if test(mode)), 'not a file')


def check_is(where: str, path: str, expected: str) -> None:
    """HatError ``<where>: <path> is <what it is>, not <expected>`` unless ``path`` is ``expected`` ('a folder' or
    'a file'): a device or a FIFO read as a dataset would block, or never end."""
    kind = path_kind(path)
    if kind == 'nothing':
        raise HatError(f'{where}: {path} does not exist')
    if kind != expected:
        raise HatError(f'{where}: {path} is {kind}, not {expected}')


def read_meta_info(meta_info_file: str) -> list[tuple[str, tuple[int, int] | None]]:
    """(name, (h, w) or None) for each line of a BasicSR meta-info file: ``NAME (h,w,c)`` or just ``NAME [...]``."""
    check_is('meta-info file', meta_info_file, 'a file')
    entries = []
    with open(meta_info_file) as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            if any(rest.strip() for rest in lines[number:]):  # BasicSR would read it as the folder itself
                raise HatError(f'meta-info file {meta_info_file}: line {number} is blank')
            continue
        name, _, rest = line.strip().partition(' ')
        shape = _SHAPE.match(rest.strip())
        entries.append((name, (int(shape[1]), int(shape[2])) if shape else None))
    return entries


def naming_unreadable_images(getitem: Callable, client_key: str) -> Callable:
    """A dataset's ``getitem`` that names the file when reading one of its images is what failed.

    BasicSR's datasets check nothing they read: an image that becomes unreadable during a run (deleted, or damaged
    while being copied; the launchers check every image at start) stops it with "AttributeError: 'NoneType' object
    has no attribute 'astype'", naming no file. Here the images of the failed item are read again and the first one
    that cannot be is a one-line HatError; any other error is re-raised as it was. ``client_key`` is the file
    client's key for a dataset whose ``paths`` are plain paths (for dicts, ``gt_path`` gives ``gt``).
    """
    @functools.wraps(getitem)
    def __getitem__(self, index):
        try:
            return getitem(self, index)
        except Exception:
            if self.file_client is not None:
                entry = self.paths[index]
                named = [(key.removesuffix('_path'), path) for key, path in entry.items()] if isinstance(entry, dict) \
                    else [(client_key, entry)]
                for key, path in named:
                    read_dataset_image(self.file_client, path, key)
            raise

    return __getitem__


def check_dataset_options(opt: dict, problems: Problems | None = None) -> None:
    """Check every dataset and pretrained file of parsed BasicSR options; add each problem to ``problems``, or without
    it raise HatError naming them all.

    Call it after ``parse_options`` and before building datasets or models. It checks that the folders
    (``dataroot_gt``, ``dataroot_lq``), meta-info files and ``path: pretrain_network_*`` files exist, that LR and GT
    folders pair file by file, that the images are readable, and that training GTs are at least ``gt_size``, which
    must be a multiple of the scale. Image sizes come from the meta-info file when it records them, else from the
    image headers.
    """
    found = Problems() if problems is None else problems
    with found.collect():  # Real-ESRGAN/Real-HAT models' own crop
        check_patch_size('gt_size', opt.get('gt_size'), opt.get('scale', 1))
    for phase, dataset in (opt.get('datasets') or {}).items():
        check_dataset(f'datasets: {phase}', dataset, int(dataset.get('scale', opt.get('scale', 1))),
                      train=phase.split('_')[0] == 'train', problems=found)
    for key, path in (opt.get('path') or {}).items():
        if key.startswith('pretrain_network') and path:
            with found.collect():
                check_is(f'path: {key}', path, 'a file')
    if not found:  # the images' headers are read only once every path is there
        with found.collect():
            check_validation_memory(opt)
    if problems is None:
        found.raise_if_any('the option file')


def cap_workers(opt: dict, cores: int | None = None) -> list[str]:
    """Cap every dataset's ``num_worker_per_gpu`` at the CPU cores there are (``cores``; default: those this process
    may use): each worker is a process, and more than one per core only adds memory. Returns a one-line note for each
    value lowered."""
    cores = cores or _usable_cores()
    notes = []
    for phase, dataset in (opt.get('datasets') or {}).items():
        workers = dataset.get('num_worker_per_gpu')
        if type(workers) is int and workers > cores:
            dataset['num_worker_per_gpu'] = cores
            notes.append(f'datasets: {phase}: num_worker_per_gpu {workers} lowered to {cores}, the CPU cores there are')
    return notes


def _usable_cores() -> int:
    if hasattr(os, 'sched_getaffinity'):  # Linux: the cores this process may run on (a container's, a taskset's)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def validation_bytes(header: ImageHeader, scale: int, embed_dim: int | None, tiled: bool) -> int:
    """Peak memory of validating on one LR image of ``header``'s size: its arrays and output (as ``hat-sr upscale``),
    the metrics' float64 maps of the output, and, for a HAT of width ``embed_dim`` run on the whole image (no
    ``tile`` options), the network's activations."""
    output_values = header.pixels * scale**2 * 3
    network = 0 if tiled or embed_dim is None else header.pixels * forward_values_per_pixel(embed_dim, scale) * 4
    return upscale_bytes(header, scale) + output_values * FLOAT64 * METRIC_MAPS + network


def check_validation_memory(opt: dict) -> None:
    """Every validation and test LR image (disk folders) is judged from its header against the memory there is, at the
    start: one found too large at the first validation, hours into training, would end the run."""
    network = opt.get('network_g') if isinstance(opt.get('network_g'), dict) else {}
    embed_dim = network.get('embed_dim', HATConfig().embed_dim) if network.get('type') == 'HAT' else None
    tiled = bool((opt.get('tile') or {}).get('tile_size'))
    remedy = ('use smaller validation images' if tiled else
              'validate in tiles (tile: {tile_size: auto}) or on smaller images')
    for phase, dataset in (opt.get('datasets') or {}).items():
        folder, backend = dataset.get('dataroot_lq'), (dataset.get('io_backend') or {}).get('type', 'disk')
        if phase.split('_')[0] == 'train' or not folder or backend != 'disk':
            continue
        scale = int(dataset.get('scale', opt.get('scale', 1)))
        for name in sorted(scandir(folder, recursive=True)):
            if is_image_name(name):
                check_image_memory(osp.join(folder, name),
                                   lambda header: validation_bytes(header, scale, embed_dim, tiled),
                                   f'validate x{scale} ({phase})', remedy=remedy)


def check_patch_size(where: str, gt_size, scale: int) -> None:
    """A training ``gt_size`` is a multiple of the scale: BasicSR would cut ``gt_size // scale`` LR pixels and
    ``gt_size`` GT pixels, and the loss would fail on the sizes at the first iteration."""
    if gt_size is not None and (type(gt_size) is not int or gt_size < 1 or gt_size % scale):
        raise HatError(f'{where} {gt_size!r} must be a positive multiple of the scale {scale}')


def check_dataset(where: str, dataset: dict, scale: int, train: bool, problems: Problems) -> None:
    """Add the problems of one dataset's options to ``problems`` (see :func:`check_dataset_options`); ``where`` names
    it in messages. Its images are checked only when its folders and files are all there."""
    before = len(problems)
    always, for_training = REQUIRED_KEYS.get(dataset.get('type'), ((), ()))
    for key in always + for_training * train:
        if key not in dataset:
            problems.add(f'{where}: missing required key {key}{did_you_mean(key, dataset)}')
    if train:
        with problems.collect():
            check_patch_size(f'{where}: gt_size', dataset.get('gt_size'), scale)
        for key, least in (('batch_size_per_gpu', 1), ('num_worker_per_gpu', 0)):
            value = dataset.get(key, least)
            if type(value) is not int or value < least:
                problems.add(f'{where}: {key} must be a whole number >= {least}, got {value!r}')
    backend = (dataset.get('io_backend') or {}).get('type', 'disk')
    if dataset.get('type') == 'RealESRGANDataset' and 'meta_info_file' in dataset:  # the reference recipes' key
        problems.add(f'{where}: meta_info_file is not read by RealESRGANDataset; name the meta-info file with '
                     'meta_info (or leave it out to use every image)')
    for key in ('dataroot_gt', 'dataroot_lq'):
        folder = dataset.get(key)
        if folder is not None and not osp.exists(folder):
            problems.add(f'{where}: {key}: folder {folder} does not exist')
        elif folder is not None:
            with problems.collect():
                check_is(f'{where}: {key}', folder, 'a folder')
    for key in ('meta_info_file', 'meta_info'):
        read = not (key == 'meta_info_file' and dataset.get('type') == 'RealESRGANDataset')
        if read and dataset.get(key) and not osp.exists(dataset[key]):
            problems.add(f'{where}: {key}: file {dataset[key]} does not exist')
        elif read and dataset.get(key):
            with problems.collect():
                check_is(f'{where}: {key}', dataset[key], 'a file')
    if backend != 'disk' or len(problems) > before:
        return
    if dataset.get('type') in PAIRED_TYPES and dataset.get('dataroot_gt') and dataset.get('dataroot_lq'):
        with problems.collect():  # the first unpaired or unreadable image: the others are likely the same mistake
            check_pairs(where, dataset, scale, train)


def check_pairs(where: str, dataset: dict, scale: int, train: bool) -> None:
    """LR and GT folders pair file by file; images are readable, LR x scale = GT, and training GTs >= gt_size.

    Evaluation allows a GT a few pixels larger than LR x scale (BasicSR crops it); training does not.
    """
    gt_folder, lq_folder = dataset['dataroot_gt'], dataset['dataroot_lq']
    template = dataset.get('filename_tmpl', '{}')
    lq_names = set(scandir(lq_folder))
    if dataset.get('meta_info_file'):
        entries = read_meta_info(dataset['meta_info_file'])
        gt_names = set(scandir(gt_folder, recursive=True))
        for name, _ in entries:
            if name not in gt_names:
                raise HatError(f"{where}: {name} of meta_info_file {dataset['meta_info_file']} is not in "
                               f'dataroot_gt {gt_folder}')
    else:
        entries = [(name, None) for name in sorted(scandir(gt_folder))]
    if not entries:
        raise HatError(f'{where}: dataroot_gt: folder {gt_folder} has no images')

    def lq_name(gt_name: str) -> str:
        base, ext = osp.splitext(osp.basename(gt_name))
        return f'{template.format(base)}{ext}'

    for name, _ in entries:
        if lq_name(name) not in lq_names:
            raise HatError(f'{where}: GT {osp.join(gt_folder, name)} has no LR partner {lq_name(name)} in '
                           f'dataroot_lq {lq_folder}')
    if not dataset.get('meta_info_file'):
        unpaired = sorted(lq_names - {lq_name(name) for name, _ in entries})
        if unpaired:
            raise HatError(f'{where}: LR {osp.join(lq_folder, unpaired[0])} has no GT partner in dataroot_gt '
                           f'{gt_folder}')

    gt_size = dataset.get('gt_size') if train else None
    for name, shape in tqdm(entries, desc='checking images', unit='image', leave=False, disable=len(entries) < 1000):
        gt_path, lq_path = osp.join(gt_folder, name), osp.join(lq_folder, lq_name(name))
        if shape is None:  # sizes not recorded in a meta-info file: read the headers
            shape = image_shape(gt_path)[:2]
            lq_h, lq_w = image_shape(lq_path)[:2]
            expected = shape if train else (shape[0] - shape[0] % scale, shape[1] - shape[1] % scale)
            if (lq_h * scale, lq_w * scale) != tuple(expected):
                raise HatError(f'{where}: LR {lq_path} is {lq_h}x{lq_w}, but GT {gt_path} is {shape[0]}x{shape[1]}; '
                               f'GT must be LR x scale {scale}')
        if gt_size and min(shape) < gt_size:
            raise HatError(f'{where}: GT {gt_path} is {shape[0]}x{shape[1]}, smaller than gt_size {gt_size}')
