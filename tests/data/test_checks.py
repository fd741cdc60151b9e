"""check_dataset_options: bad data in an option file is one line naming the key, folder or file at fault."""
from __future__ import annotations

import re
import shutil

import pytest

from hat_arch.data.checks import check_dataset_options, read_meta_info
from hat_arch.errors import HatError
from tests.conftest import DATA


def paired_opt(gt, lq, phase='val_1', **extra) -> dict:
    dataset = dict(name='Set', type='PairedImageDataset', dataroot_gt=str(gt), dataroot_lq=str(lq),
                   io_backend={'type': 'disk'}, use_hflip=True, use_rot=True, **extra)
    return {'scale': 4, 'datasets': {phase: dataset}, 'path': {'pretrain_network_g': None}}


@pytest.fixture
def set5(tmp_path):
    """A writable copy of Set5 x4."""
    shutil.copytree(DATA / 'Set5' / 'GTmod4', tmp_path / 'gt')
    shutil.copytree(DATA / 'Set5' / 'LRbicx4', tmp_path / 'lq')
    return tmp_path / 'gt', tmp_path / 'lq'


def test_good_options_pass(set5):
    check_dataset_options(paired_opt(*set5))
    check_dataset_options(paired_opt(*set5, phase='train', gt_size=64))


def test_missing_folder_names_the_key_and_path(set5, tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(HatError, match=f'datasets: val_1: dataroot_lq: folder {missing} does not exist'):
        check_dataset_options(paired_opt(set5[0], missing))


def test_unpaired_folders_name_the_first_unmatched_file(set5):
    gt, lq = set5
    (lq / 'bird.png').rename(lq / 'bird2.png')
    with pytest.raises(HatError, match=f'GT {gt / "bird.png"} has no LR partner bird.png in dataroot_lq {lq}$'):
        check_dataset_options(paired_opt(gt, lq))
    (gt / 'bird.png').unlink()
    with pytest.raises(HatError, match=f'LR {lq / "bird2.png"} has no GT partner'):
        check_dataset_options(paired_opt(gt, lq))


def test_unreadable_image_is_named(set5):
    gt, lq = set5
    (gt / 'head.png').write_bytes(b'\x89PNG broken')
    with pytest.raises(HatError, match=f'cannot read {gt / "head.png"}: not an image'):
        check_dataset_options(paired_opt(gt, lq))


def test_lr_of_the_wrong_size_is_named(set5):
    gt, lq = set5
    shutil.copy(lq / 'baby.png', lq / 'bird.png')
    with pytest.raises(HatError, match=f'LR {lq / "bird.png"} is 128x128, but GT {gt / "bird.png"} is 288x288'):
        check_dataset_options(paired_opt(gt, lq))


def test_gt_smaller_than_gt_size_says_so(set5):
    gt, lq = set5
    with pytest.raises(HatError, match=r'GT .*woman.png is 344x228, smaller than gt_size 256'):
        check_dataset_options(paired_opt(gt, lq, phase='train', gt_size=256))
    check_dataset_options(paired_opt(gt, lq, phase='val', gt_size=256))  # evaluation takes whole images


@pytest.mark.parametrize('where', ['dataset', 'model'])
def test_gt_size_must_be_a_multiple_of_the_scale(set5, where):
    # BasicSR would cut 32 LR and 130 GT pixels, and the loss fail on 128 against 130 at the first iteration.
    opt = paired_opt(*set5, phase='train', gt_size=64)
    named = opt['datasets']['train'] if where == 'dataset' else opt  # Real-ESRGAN models crop with their own
    named['gt_size'] = 130
    prefix = 'datasets: train: ' if where == 'dataset' else ''
    with pytest.raises(HatError, match=f'^{prefix}gt_size 130 must be a positive multiple of the scale 4$'):
        check_dataset_options(opt)
    named['gt_size'] = 128
    check_dataset_options(opt)


@pytest.mark.parametrize('change, message', [
    ({'dataroot_g': 'x'}, "datasets: train: missing required key dataroot_gt (did you mean 'dataroot_g'?)"),
    ({'use_rot': None}, 'datasets: train: missing required key use_rot'),
    ({'batch_size_per_gpu': 0}, 'datasets: train: batch_size_per_gpu must be a whole number >= 1, got 0'),
    ({'num_worker_per_gpu': '2'}, "datasets: train: num_worker_per_gpu must be a whole number >= 0, got '2'"),
])
def test_keys_the_dataset_reads_are_checked(set5, change, message):
    # They failed inside the dataset or the DataLoader (KeyError: 'dataroot_gt'), after the network was printed.
    opt = paired_opt(*set5, phase='train', gt_size=64, batch_size_per_gpu=2)
    dataset = opt['datasets']['train']
    if 'dataroot_g' in change:
        dataset['dataroot_g'] = dataset.pop('dataroot_gt')
    else:
        dataset.update({k: v for k, v in change.items() if v is not None})
        for key in (k for k, v in change.items() if v is None):
            del dataset[key]
    with pytest.raises(HatError, match=f'^{re.escape(message)}$'):
        check_dataset_options(opt)


def test_the_reference_real_recipes_meta_info_file_key_is_named(tmp_path):
    # RealESRGANDataset reads meta_info; the reference's meta_info_file was silently ignored.
    dataset = dict(type='RealESRGANDataset', dataroot_gt=str(DATA / 'T91' / 'HR'), meta_info_file='meta.txt',
                   io_backend={'type': 'disk'}, use_hflip=True, use_rot=True)
    with pytest.raises(HatError, match='^datasets: train: meta_info_file is not read by RealESRGANDataset; name '):
        check_dataset_options({'scale': 4, 'datasets': {'train': dataset}})


def test_meta_info_sizes_are_used_and_listed_files_must_exist(set5, tmp_path):
    gt, lq = set5
    meta = tmp_path / 'meta.txt'
    meta.write_text('baby.png (512,512,3)\nbird.png (100,100,3)\n')
    with pytest.raises(HatError, match='bird.png is 100x100, smaller than gt_size 128'):  # from the file, no decoding
        check_dataset_options(paired_opt(gt, lq, phase='train', gt_size=128, meta_info_file=str(meta)))
    meta.write_text('baby.png (512,512,3)\nlena.png (512,512,3)\n')
    with pytest.raises(HatError, match=f'lena.png of meta_info_file {meta} is not in dataroot_gt {gt}'):
        check_dataset_options(paired_opt(gt, lq, meta_info_file=str(meta)))
    with pytest.raises(HatError, match=f'meta_info_file: file {tmp_path / "no.txt"} does not exist'):
        check_dataset_options(paired_opt(gt, lq, meta_info_file=str(tmp_path / 'no.txt')))


def test_missing_pretrained_file_is_named(set5, tmp_path):
    opt = paired_opt(*set5)
    opt['path']['pretrain_network_g'] = str(tmp_path / 'HAT_SRx4.pth')
    with pytest.raises(HatError, match=f'path: pretrain_network_g: {tmp_path / "HAT_SRx4.pth"} does not exist'):
        check_dataset_options(opt)


def test_gt_only_dataset_needs_only_its_gt_folder(tmp_path):
    opt = {'scale': 4, 'datasets': {'train': dict(type='ImageNetPairedDataset', dataroot_gt=str(DATA / 'T91' / 'HR'),
                                                  io_backend={'type': 'disk'}, gt_size=64, use_hflip=True,
                                                  use_rot=True)}}
    check_dataset_options(opt)
    opt['datasets']['train']['dataroot_gt'] = str(tmp_path / 'imagenet')
    with pytest.raises(HatError, match='datasets: train: dataroot_gt: folder .*imagenet does not exist'):
        check_dataset_options(opt)


def test_read_meta_info_parses_basicsr_and_imagenet_lines(tmp_path):
    meta = tmp_path / 'meta.txt'
    meta.write_text('0001_s001.png (480,480,3)\nn01/x.JPEG 12\n')
    assert read_meta_info(str(meta)) == [('0001_s001.png', (480, 480)), ('n01/x.JPEG', None)]


def test_a_blank_line_in_a_meta_info_file_is_named(tmp_path):
    # BasicSR keeps it as an empty name: the folder itself, 'Is a directory' when drawn mid-training.
    meta = tmp_path / 'meta.txt'
    meta.write_text('a.png (4,4,3)\n\nb.png (4,4,3)\n\n')
    with pytest.raises(HatError, match=f'meta-info file {meta}: line 2 is blank'):
        read_meta_info(str(meta))
    meta.write_text('a.png (4,4,3)\nb.png (4,4,3)\n\n')  # blank lines at the end are harmless
    assert [name for name, _ in read_meta_info(str(meta))] == ['a.png', 'b.png']
