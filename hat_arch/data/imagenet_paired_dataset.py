"""ImageNetPairedDataset: ground truth only; the LR is its MATLAB-style bicubic downscale, made on the fly."""
from __future__ import annotations

import os.path as osp
import random

import cv2
import numpy as np
from basicsr.data.data_util import paths_from_lmdb
from basicsr.data.transforms import augment, mod_crop
from basicsr.utils import FileClient, img2tensor, scandir
from basicsr.utils.color_util import bgr2ycbcr
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY
from torch.utils import data
from torchvision.transforms.functional import normalize

from hat_arch.data.checks import read_meta_info
from hat_arch.image_io import is_image_name, read_dataset_image

# MATLAB's antialiased bicubic reads 2 LR pixels (2*scale GT pixels) on each side; resizing a crop with this much
# context gives exactly the LR pixels of the whole image, at the cost of the crop instead of the whole image.
_CONTEXT = 2


@DATASET_REGISTRY.register()
class ImageNetPairedDataset(data.Dataset):
    """Pairs (LR, GT) from GT images alone, as HAT's same-task pre-training on ImageNet uses.

    Each GT is cropped to a multiple of ``scale``; the LR is ``basicsr.utils.matlab_functions.imresize(gt, 1/scale)``
    (MATLAB's bicubic, the benchmark degradation). In training a random ``gt_size`` patch is cut first and only it is
    resized (with enough context that the result equals cropping the LR of the whole image), then flipped/rotated.
    GTs smaller than ``gt_size`` are first resized up to it, as in the reference (ImageNet has such images).

    Options (BasicSR's keys): ``dataroot_gt``; ``meta_info_file`` (optional: the first word of each line is an image
    path relative to ``dataroot_gt``; else every image under ``dataroot_gt``, recursively); ``io_backend`` (disk or
    lmdb); ``scale``; ``phase``; for training ``gt_size``, ``use_hflip``, ``use_rot``; optional ``color: y``,
    ``mean``, ``std``. ``dataroot_lq`` is ignored (the reference recipes set it to the GT folder).

    Returns dicts ``{'lq': (c, h/scale, w/scale), 'gt': (c, h, w), 'lq_path', 'gt_path'}``, float32 RGB in [0, 1].
    """

    def __init__(self, opt: dict):
        super().__init__()
        self.opt = opt
        self.file_client = None
        self.io_backend_opt = dict(opt['io_backend'])
        self.gt_folder = opt['dataroot_gt']
        self.scale = opt['scale']
        if self.io_backend_opt['type'] == 'lmdb':
            self.io_backend_opt['db_paths'] = [self.gt_folder]
            self.io_backend_opt['client_keys'] = ['gt']
            self.paths = paths_from_lmdb(self.gt_folder)
        elif opt.get('meta_info_file'):
            self.paths = [osp.join(self.gt_folder, name) for name, _ in read_meta_info(opt['meta_info_file'])]
        else:
            self.paths = sorted(path for path in scandir(self.gt_folder, recursive=True, full_path=True)
                                if is_image_name(path))  # not a README or a .DS_Store drawn mid-training

    def __getitem__(self, index: int) -> dict:
        if self.file_client is None:
            backend = dict(self.io_backend_opt)
            self.file_client = FileClient(backend.pop('type'), **backend)
        gt_path = self.paths[index]
        img_gt = mod_crop(read_dataset_image(self.file_client, gt_path, 'gt'), self.scale)

        if self.opt['phase'] == 'train':
            img_gt, img_lq = self.random_pair(img_gt, self.opt['gt_size'])
            img_gt, img_lq = augment([img_gt, img_lq], self.opt['use_hflip'], self.opt['use_rot'])
        else:
            img_lq = imresize(img_gt, 1 / self.scale)

        if self.opt.get('color') == 'y':  # the images are BGR here, as for BasicSR's PairedImageDataset
            img_gt = bgr2ycbcr(img_gt, y_only=True)[..., None]
            img_lq = bgr2ycbcr(img_lq, y_only=True)[..., None]
        img_gt, img_lq = img2tensor([img_gt, img_lq], bgr2rgb=True, float32=True)
        if self.opt.get('mean') is not None or self.opt.get('std') is not None:
            normalize(img_lq, self.opt['mean'], self.opt['std'], inplace=True)
            normalize(img_gt, self.opt['mean'], self.opt['std'], inplace=True)
        return {'lq': img_lq, 'gt': img_gt, 'lq_path': gt_path, 'gt_path': gt_path}

    def random_pair(self, img_gt: np.ndarray, gt_size: int) -> tuple[np.ndarray, np.ndarray]:
        """A random (gt_size, gt_size) GT patch at a multiple of ``scale`` and its MATLAB-bicubic LR patch."""
        scale = self.scale
        h, w = img_gt.shape[:2]
        if h < gt_size or w < gt_size:
            img_gt = cv2.resize(img_gt, (max(w, gt_size), max(h, gt_size)))
            h, w = img_gt.shape[:2]
        lq_size, lq_h, lq_w = gt_size // scale, h // scale, w // scale
        top, left = random.randint(0, lq_h - lq_size), random.randint(0, lq_w - lq_size)
        # LR coordinates of the patch with its context, clipped to the image (whose borders the resize mirrors).
        top_c, left_c = max(top - _CONTEXT, 0), max(left - _CONTEXT, 0)
        bottom_c, right_c = min(top + lq_size + _CONTEXT, lq_h), min(left + lq_size + _CONTEXT, lq_w)
        lq = imresize(img_gt[top_c * scale:bottom_c * scale, left_c * scale:right_c * scale], 1 / scale)
        lq = lq[top - top_c:top - top_c + lq_size, left - left_c:left - left_c + lq_size]
        gt = img_gt[top * scale:(top + lq_size) * scale, left * scale:(left + lq_size) * scale]
        return np.ascontiguousarray(gt), np.ascontiguousarray(lq)

    def __len__(self) -> int:
        return len(self.paths)
