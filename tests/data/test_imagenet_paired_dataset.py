"""ImageNetPairedDataset: GT-only pairs whose LR is BasicSR's MATLAB-like bicubic, cropped and augmented."""
from __future__ import annotations

import random

import cv2
import numpy as np
import pytest
import torch
from basicsr.data.transforms import mod_crop
from basicsr.utils import img2tensor
from basicsr.utils.color_util import bgr2ycbcr
from basicsr.utils.matlab_functions import imresize

from hat_arch.data.imagenet_paired_dataset import ImageNetPairedDataset
from hat_arch.errors import HatError
from tests.conftest import DATA

T91 = DATA / 'T91' / 'HR'


def make(folder=T91, phase='train', **opt) -> ImageNetPairedDataset:
    return ImageNetPairedDataset(dict(dict(dataroot_gt=str(folder), io_backend={'type': 'disk'}, scale=4, phase=phase,
                                           gt_size=64, use_hflip=False, use_rot=False), **opt))


def whole_lr(path, scale=4) -> torch.Tensor:
    gt = mod_crop(cv2.imread(str(path)).astype(np.float32) / 255., scale)
    return img2tensor(imresize(gt, 1 / scale))


def test_plain_folder_lists_every_image():
    dataset = make()
    assert len(dataset) == 91
    assert dataset.paths[0].endswith('t1.png')


def test_training_patch_is_the_crop_of_the_whole_image_lr(monkeypatch):
    dataset = make()
    index = dataset.paths.index(str(T91 / 't1.png'))
    offsets = iter([7, 11])  # LR top, left
    monkeypatch.setattr(random, 'randint', lambda a, b: next(offsets))
    item = dataset[index]
    assert item['gt'].shape == (3, 64, 64) and item['lq'].shape == (3, 16, 16)
    gt = img2tensor(cv2.imread(str(T91 / 't1.png')).astype(np.float32) / 255.)
    torch.testing.assert_close(item['gt'], gt[:, 28:92, 44:108])
    # resizing only the patch (with context) gives exactly the LR of the whole image there
    torch.testing.assert_close(item['lq'], whole_lr(T91 / 't1.png')[:, 7:23, 11:27], atol=1e-5, rtol=0)


def test_augmentation_keeps_lr_and_gt_aligned():
    dataset = make(use_hflip=True, use_rot=True)
    random.seed(3)
    for index in range(8):
        item = dataset[index]
        lr_of_gt = torch.from_numpy(imresize(item['gt'].permute(1, 2, 0).numpy(), 1 / 4)).permute(2, 0, 1)
        # away from the patch border (where the patch's own resize lacks context) LR = bicubic(GT)
        torch.testing.assert_close(item['lq'][:, 2:-2, 2:-2], lr_of_gt[:, 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_small_gt_is_resized_up_to_the_patch_size(tmp_path):
    cv2.imwrite(str(tmp_path / 'small.png'), cv2.imread(str(T91 / 't1.png'))[:40, :50])
    item = make(tmp_path)[0]
    assert item['gt'].shape == (3, 64, 64) and item['lq'].shape == (3, 16, 16)


def test_only_images_are_listed(tmp_path):
    for name in ('t1.png', 't2.png'):
        (tmp_path / name).write_bytes((T91 / name).read_bytes())
    (tmp_path / 'README.txt').write_text('not an image')  # drawn mid-training, it would stop the run
    assert [p.rsplit('/', 1)[1] for p in make(tmp_path).paths] == ['t1.png', 't2.png']


def test_y_channel_is_that_of_the_bgr_image_as_in_basicsrs_paired_dataset():
    item = make(phase='val', color='y')[0]
    gt = mod_crop(cv2.imread(str(T91 / 't1.png')).astype(np.float32) / 255., 4)
    torch.testing.assert_close(item['gt'], img2tensor(bgr2ycbcr(gt, y_only=True)[..., None]))


def test_evaluation_uses_the_whole_image():
    item = make(phase='val')[0]
    torch.testing.assert_close(item['lq'], whole_lr(T91 / 't1.png'))
    assert item['gt'].shape[1:] == (item['lq'].shape[1] * 4, item['lq'].shape[2] * 4)


def test_meta_info_file_lists_paths_relative_to_the_root(tmp_path):
    (tmp_path / 'n01' ).mkdir()
    cv2.imwrite(str(tmp_path / 'n01' / 'a.png'), cv2.imread(str(T91 / 't2.png')))
    meta = tmp_path / 'meta.txt'
    meta.write_text('n01/a.png 0\n\n')  # ImageNet style: "path label"
    dataset = make(tmp_path, meta_info_file=str(meta))
    assert dataset.paths == [str(tmp_path / 'n01' / 'a.png')]
    assert dataset[0]['gt'].shape == (3, 64, 64)


def test_unreadable_image_is_named(tmp_path):
    (tmp_path / 'broken.png').write_bytes(b'not a png')
    with pytest.raises(HatError, match=f'cannot read {tmp_path / "broken.png"}: not an image'):
        make(tmp_path)[0]
