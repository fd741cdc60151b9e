"""``RealESRGANDataset`` as the reference HAT registers it: BasicSR's, with the meta-info file optional.

BasicSR registers its Real-ESRGAN dataset as ``RealESRGANDataset_basicsr`` and requires ``meta_info``; the reference HAT
registered its own ``RealESRGANDataset`` under the plain name. This one keeps that name and BasicSR's behaviour, and
without ``meta_info`` reads every image under ``dataroot_gt`` (so a recipe pointed at a new folder just works); an image
unreadable mid-run is a one-line error naming it.
"""
from __future__ import annotations

import os
import os.path as osp

from basicsr.data.realesrgan_dataset import RealESRGANDataset as BasicSRRealESRGANDataset
from basicsr.utils.registry import DATASET_REGISTRY

from hat_arch.data.checks import naming_unreadable_images
from hat_arch.data.prepare import list_images
from hat_arch.errors import HatError


@DATASET_REGISTRY.register()
class RealESRGANDataset(BasicSRRealESRGANDataset):
    """GT images and the blur kernels of the two-stage Real-ESRGAN degradation; the LQ is made by the model.

    Keys as BasicSR's ``RealESRGANDataset``; ``meta_info`` (a file of paths relative to ``dataroot_gt``) is optional.
    """

    def __init__(self, opt: dict):
        if 'meta_info_file' in opt:  # the reference recipes' key, which its dataset silently ignored (checked at start)
            raise HatError(f"dataset {opt.get('name')}: meta_info_file is not read by RealESRGANDataset; "
                           'name the meta-info file with meta_info (or leave it out to use every image)')
        meta_info = opt.get('meta_info')
        paths = None
        if opt['io_backend']['type'] == 'disk':
            if meta_info is None:
                folder = opt['dataroot_gt']
                paths = [osp.join(folder, name) for name in list_images(folder, recursive=True)]
            elif not osp.isfile(meta_info):
                raise HatError(f"dataset {opt.get('name')}: meta_info {meta_info} does not exist (write it with "
                               '`basicsr prepare meta-info`, or leave the key out to use every image)')
        # BasicSR reads the list from meta_info; give it an empty one and set the folder listing afterwards.
        super().__init__({**opt, 'meta_info': meta_info or os.devnull})
        if paths is not None:
            self.paths = paths

    __getitem__ = naming_unreadable_images(BasicSRRealESRGANDataset.__getitem__, 'gt')
