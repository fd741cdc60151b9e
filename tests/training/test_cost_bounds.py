"""Training's cost is bounded at its start: validation images too large for memory, DataLoader workers beyond the
cores, iteration counts that overflow, and dataset paths that are devices or FIFOs are one line before any work."""
from __future__ import annotations

import os
import sys

import pytest

from hat_arch import image_io, image_memory
from hat_arch.data import checks
from hat_arch.data.checks import cap_workers, check_dataset_options
from hat_arch.errors import HatError
from hat_arch.problems import Problems
from hat_arch.training.options import check_networks, check_options, read_option_file
from tests.memory import GIB, run_measured
from tests.test_image_memory import write_black_png
from tests.training.tiny import tiny_options, write_options


def one_line(call) -> str:
    with pytest.raises(HatError) as refused:
        call()
    assert '\n' not in str(refused.value)
    return str(refused.value)


@pytest.fixture
def huge_validation_set(tmp_path):
    lq, gt = tmp_path / 'lq', tmp_path / 'gt'
    lq.mkdir()
    gt.mkdir()
    write_black_png(lq / 'big.png', 20000, 20000)
    write_black_png(gt / 'big.png', 80000, 80000)
    opt = tiny_options()
    opt['datasets']['val'].update(dataroot_lq=str(lq), dataroot_gt=str(gt))
    return opt, lq / 'big.png'


def test_a_validation_image_too_large_for_memory_is_refused_at_the_start(huge_validation_set, monkeypatch):
    opt, image = huge_validation_set
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 24 * GIB)
    message = one_line(lambda: check_dataset_options(opt))
    assert message.startswith(f'{image}: 20000x20000 pixels would take about ')
    assert message.endswith('of memory to validate x4 (val); 12.0 GiB can be spared (of 24.0 GiB available). validate '
                            'in tiles (tile: {tile_size: auto}) or on smaller images')
    opt['tile'] = {'tile_size': 'auto'}  # tiles bound the network, not the image and its x4 output
    assert one_line(lambda: check_dataset_options(opt)).endswith('use smaller validation images')


def test_the_validation_estimate_counts_the_untiled_network():
    header = image_io.ImageHeader(500, 500, 'RGB', 3)
    tiled = checks.validation_bytes(header, 4, 180, tiled=True)
    assert checks.validation_bytes(header, 4, 180, tiled=False) > tiled + 500 * 500 * 20 * 180 * 4
    assert checks.validation_bytes(header, 4, None, tiled=False) == tiled  # not a HAT: its arrays only


def test_ordinary_validation_images_pass(monkeypatch):
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 2 * GIB)
    check_dataset_options(tiny_options())  # Set5, whole images, a tiny HAT


@pytest.mark.slow
def test_the_huge_validation_image_costs_little_to_refuse(huge_validation_set, tmp_path):
    opt, image = huge_validation_set
    path = write_options(tmp_path, opt)
    run = run_measured(['-c', 'import sys; from hat_arch.cli import basicsr_main; sys.exit(basicsr_main())', 'train',
                        '-opt', path], timeout=300, cwd=tmp_path)
    print(f'refused in {run.seconds:.0f} s, peak {run.peak_rss / GIB:.2f} GiB')
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1].startswith(f'basicsr train: error: {image}: ')
    assert run.peak_rss < 1.5 * GIB  # main passed 12 GB at the first validation
    assert not (tmp_path / 'experiments').exists()


def test_dataloader_workers_are_capped_at_the_cores_with_a_note():
    opt = tiny_options()
    opt['datasets']['train']['num_worker_per_gpu'] = 100_000
    opt['datasets']['val']['num_worker_per_gpu'] = 3
    assert cap_workers(opt, cores=4) == ['datasets: train: num_worker_per_gpu 100000 lowered to 4, the CPU cores '
                                         'there are']
    assert opt['datasets']['train']['num_worker_per_gpu'] == 4 and opt['datasets']['val']['num_worker_per_gpu'] == 3
    assert cap_workers(opt, cores=4) == []
    opt['datasets']['train']['num_worker_per_gpu'] = 10**6
    assert cap_workers(opt)[0].endswith(f'lowered to {len(os.sched_getaffinity(0))}, the CPU cores there are')


@pytest.mark.parametrize('section, key', [('train', 'total_iter'), ('logger', 'save_checkpoint_freq'),
                                          ('logger', 'print_freq'), ('val', 'val_freq')])
def test_iteration_counts_beyond_any_training_are_one_line_naming_the_key(section, key):
    opt = tiny_options()
    opt[section][key] = 1e30
    assert one_line(lambda: check_options(opt, 'opt.yml', is_train=True)) == \
        f'option file opt.yml: {section}: {key} 1e+30 is more than the 1000000000 iterations hat_arch allows'


@pytest.mark.parametrize('key', ['dataroot_gt', 'dataroot_lq'])
def test_a_device_as_a_dataset_folder_is_named_as_one(key):
    opt = tiny_options()
    opt['datasets']['train'][key] = '/dev/zero'
    assert one_line(lambda: check_dataset_options(opt)) == \
        f'datasets: train: {key}: /dev/zero is a character device, not a folder'


def test_a_fifo_or_a_file_as_a_dataset_folder_is_named_as_one(tmp_path):
    fifo = tmp_path / 'pipe'
    os.mkfifo(fifo)
    opt = tiny_options()
    opt['datasets']['val']['dataroot_lq'] = str(fifo)
    assert one_line(lambda: check_dataset_options(opt)) == \
        f'datasets: val: dataroot_lq: {fifo} is a FIFO (named pipe), not a folder'
    opt['datasets']['val']['dataroot_lq'] = sys.executable
    assert one_line(lambda: check_dataset_options(opt)) == \
        f'datasets: val: dataroot_lq: {sys.executable} is a file, not a folder'


def test_a_device_as_a_meta_info_or_pretrained_file_is_not_said_to_be_missing(tmp_path):
    opt = tiny_options()
    opt['datasets']['train']['meta_info_file'] = '/dev/zero'
    assert one_line(lambda: check_dataset_options(opt)) == \
        'datasets: train: meta_info_file: /dev/zero is a character device, not a file'
    opt = tiny_options()
    opt['path']['pretrain_network_g'] = '/dev/null'
    assert one_line(lambda: check_dataset_options(opt)) == \
        'path: pretrain_network_g: /dev/null is a character device, not a file'
    opt['path']['pretrain_network_g'] = str(tmp_path)
    expected = f'path: pretrain_network_g: {tmp_path} is a folder, not a file'
    assert one_line(lambda: check_dataset_options(opt)) == expected


@pytest.mark.parametrize('setting, value, message', [
    ('embed_dim', 20000, 'embed_dim 20000 is more than the 2048 hat_arch allows'),
    ('window_size', 160, 'window_size 160 is more than the 64 hat_arch allows'),
    ('depths', [1000], 'depths [1000] asks for 1000 blocks in a group, more than the 64 hat_arch allows'),
])
def test_an_option_files_network_is_held_to_the_same_limits_as_a_checkpoint(setting, value, message):
    opt = tiny_options()  # another field: the network an option file builds, not one a checkpoint implies
    opt['network_g'] = {**opt['network_g'], setting: value}
    problems = Problems()
    check_networks(opt, 'opt.yml', problems)
    assert problems.messages == [f'option file opt.yml: network_g: {message}']


def test_a_device_or_folder_as_the_option_file_is_named_as_one(tmp_path):  # another command's field: -opt
    assert one_line(lambda: read_option_file('/dev/zero')) == 'option file /dev/zero is a character device, not a file'
    assert one_line(lambda: read_option_file(str(tmp_path))) == f'option file {tmp_path} is a folder, not a file'
    assert one_line(lambda: read_option_file(str(tmp_path / 'no.yml'))) == f'option file {tmp_path / "no.yml"} does ' \
        'not exist'
