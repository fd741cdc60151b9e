"""basicsr prepare: sub-images, bicubic LR, benchmark folders, meta-info, the DF2K layout."""
from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from basicsr.utils.matlab_functions import imresize

from hat_arch import image_memory
from hat_arch.cli.prepare import main
from hat_arch.data.checks import check_dataset_options, read_meta_info
from hat_arch.data.prepare import crop_positions
from tests.conftest import DATA
from tests.test_image_memory import write_black_png


@pytest.fixture
def hr(tmp_path):
    """Two real HR images of different sizes (T91 t1 and t2) in a folder."""
    folder = tmp_path / 'HR'
    folder.mkdir()
    for name in ('t1.png', 't2.png'):
        shutil.copy(DATA / 'T91' / 'HR' / name, folder / name)
    return folder


def test_crop_positions_cover_the_side():
    assert crop_positions(1000, 480, 240, 0) == [0, 240, 480, 520]
    assert crop_positions(960, 480, 240, 0) == [0, 240, 480]
    assert crop_positions(500, 480, 240, 30) == [0]  # 20 left over: within the threshold
    assert crop_positions(100, 480, 240, 0) == []


@pytest.mark.slow  # spawns processes
def test_hr_and_lr_sub_images_pair_by_name(hr, tmp_path):
    assert main([
        'crop', str(hr), str(tmp_path / 'HR_sub'), '--crop-size', '64', '--step', '32', '--modcrop', '4',
        '--workers', '2']) == 0
    assert main(['crop', str(hr), str(tmp_path / 'LR_sub'), '--crop-size', '64', '--step', '32', '--scale', '4',
                 '--modcrop', '4', '--workers', '1']) == 0
    hr_names = sorted(p.name for p in (tmp_path / 'HR_sub').iterdir())
    assert hr_names == sorted(p.name for p in (tmp_path / 'LR_sub').iterdir())
    h, w = cv2.imread(str(hr / 't1.png')).shape[:2]
    assert sum(n.startswith('t1_s') for n in hr_names) == len(crop_positions(h - h % 4, 64, 32, 0)) * len(
        crop_positions(w - w % 4, 64, 32, 0))
    for name in hr_names[:3] + hr_names[-3:]:
        gt = cv2.imread(str(tmp_path / 'HR_sub' / name))
        lq = cv2.imread(str(tmp_path / 'LR_sub' / name))
        assert gt.shape == (64, 64, 3) and lq.shape == (16, 16, 3)
        # the LR sub-image is cut from the LR of the whole image: inside, it is the bicubic of its GT sub-image
        bicubic = np.clip(np.round(imresize(gt / 255., 1 / 4) * 255), 0, 255)
        inner = np.abs(lq.astype(int) - bicubic)[2:-2, 2:-2]
        assert inner.max() <= 1


def test_benchmark_matches_the_published_set5_lr(tmp_path):
    assert main(['benchmark', str(DATA / 'Set5' / 'GTmod4'), str(tmp_path / 'Set5'), '--scales', '4', '2']) == 0
    for name in ('baby.png', 'butterfly.png'):
        made = cv2.imread(str(tmp_path / 'Set5' / 'LRbicx4' / name)).astype(int)
        published = cv2.imread(str(DATA / 'Set5' / 'LRbicx4' / name)).astype(int)
        assert made.shape == published.shape and np.abs(made - published).mean() < 0.5
    assert cv2.imread(str(tmp_path / 'Set5' / 'GTmod2' / 'baby.png')).shape == (512, 512, 3)
    assert cv2.imread(str(tmp_path / 'Set5' / 'LRbicx2' / 'baby.png')).shape == (256, 256, 3)


def test_meta_info_lists_names_and_shapes_and_keeps_existing_files(hr, tmp_path, capsys):
    meta = tmp_path / 'meta.txt'
    assert main(['meta-info', str(hr), str(meta), '--workers', '1']) == 0
    h, w = cv2.imread(str(hr / 't2.png')).shape[:2]
    assert meta.read_text().splitlines()[1] == f't2.png ({h},{w},3)'
    meta.write_text('mine\n')
    assert main(['meta-info', str(hr), str(meta)]) == 2
    assert meta.read_text() == 'mine\n'
    assert f'meta-info file {meta} exists; remove it or pass --overwrite' in capsys.readouterr().err


@pytest.mark.parametrize('workers', ['1', '2'])
def test_meta_info_names_every_unreadable_image_and_writes_nothing(hr, tmp_path, capsys, workers):
    (hr / 'a_empty.png').write_bytes(b'')
    (hr / 'z_notes.png').write_text('not an image')
    meta = tmp_path / 'meta.txt'
    assert main(['meta-info', str(hr), str(meta), '--workers', workers]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert err.startswith(f'basicsr prepare: error: meta-info file {meta} not written: 2 of the images cannot be '
                          'read: ')
    assert f'cannot read {hr / "a_empty.png"}: not an image' in err and f'{hr / "z_notes.png"}: not an image' in err
    assert not meta.exists()


def test_upper_case_extensions_are_images(hr, tmp_path):
    # ImageNet's files end in .JPEG; its meta-info file is what the ImageNet recipes read.
    (hr / 't1.png').rename(hr / 'T1.PNG')
    cv2.imwrite(str(hr / 'photo.JPEG'), cv2.imread(str(hr / 't2.png')))
    meta = tmp_path / 'meta.txt'
    assert main(['meta-info', str(hr), str(meta), '--workers', '1']) == 0
    assert [line.split()[0] for line in meta.read_text().splitlines()] == ['T1.PNG', 'photo.JPEG', 't2.png']


def test_names_with_spaces_cannot_go_in_a_meta_info_file(hr, tmp_path, capsys):
    (hr / 't1.png').rename(hr / 'my photo.png')
    meta = tmp_path / 'meta.txt'
    assert main(['meta-info', str(hr), str(meta)]) == 2
    assert 'my photo.png: a name with spaces cannot go in a meta-info file' in capsys.readouterr().err
    assert not meta.exists()


def test_outputs_that_exist_are_kept_and_the_missing_ones_made(hr, tmp_path, capsys):
    out = tmp_path / 'LR'
    out.mkdir()
    (out / 't1.png').write_bytes(b'mine')
    assert main(['bicubic', str(hr), str(out), '--scale', '4']) == 0
    assert (out / 't1.png').read_bytes() == b'mine'
    assert cv2.imread(str(out / 't2.png')) is not None
    assert capsys.readouterr().out == (f'1 images written in {out}, 1 image(s) skipped (outputs exist; --overwrite to '
                                       'replace them)\n')
    assert main(['bicubic', str(hr), str(out), '--scale', '4', '--overwrite']) == 0
    assert cv2.imread(str(out / 't1.png')) is not None
    assert main(['bicubic', str(tmp_path / 'nowhere'), str(tmp_path / 'x'), '--scale', '4']) == 2
    assert 'folder' in capsys.readouterr().err


@pytest.mark.slow  # spawns processes
def test_df2k_layout_is_what_the_recipes_read(hr, tmp_path):
    root = tmp_path / 'DF2K'
    shutil.copytree(hr, root / 'DF2K_HR')
    assert main(['df2k', str(root), '--crop-size', '96', '--step', '48', '--scales', '2', '4', '--workers', '2']) == 0
    entries = read_meta_info(str(root / 'meta_info_DF2Ksub_GT.txt'))
    assert entries and all(shape == (96, 96) for _, shape in entries)
    assert len(entries) == len(list((root / 'DF2K_HR_sub').iterdir()))
    for scale in (2, 4):
        dataset = dict(type='PairedImageDataset', dataroot_gt=str(root / 'DF2K_HR_sub'),
                       dataroot_lq=str(root / f'DF2K_bicx{scale}_sub'),
                       meta_info_file=str(root / 'meta_info_DF2Ksub_GT.txt'), io_backend={'type': 'disk'},
                       gt_size=96, use_hflip=True, use_rot=True)
        check_dataset_options({'scale': scale, 'datasets': {'train': dataset}})
        name = entries[-1][0]
        assert cv2.imread(str(root / f'DF2K_bicx{scale}_sub' / name)).shape == (96 // scale, 96 // scale, 3)


@pytest.mark.parametrize('flags, message', [
    (['crop', '--step', '0'], "argument --step: expected a positive integer, got '0'"),
    (['crop', '--crop-size', '-5'], "argument --crop-size: expected a positive integer, got '-5'"),
    (['crop', '--scale', '0'], "argument --scale: expected a positive integer, got '0'"),
    (['crop', '--modcrop', '0'], "argument --modcrop: expected a positive integer, got '0'"),
    (['crop', '--thresh-size', '-1'], "argument --thresh-size: expected an integer >= 0, got '-1'"),
    (['bicubic', '--scale', '0'], "argument --scale: expected a positive integer, got '0'"),
    (['benchmark', '--scales', '4', '0'], "argument --scales: expected a positive integer, got '0'"),
    (['meta-info', '--workers', '0'], "argument --workers: expected a positive integer, got '0'"),
])
def test_sizes_and_counts_must_be_positive(hr, tmp_path, capsys, flags, message):
    # They used to fail inside the job: range() with a zero step, a modulo by zero, an empty image for OpenCV.
    command, *rest = flags
    out = tmp_path / 'out' / ('meta.txt' if command == 'meta-info' else '')
    with pytest.raises(SystemExit) as exit_info:
        main([command, str(hr), str(out), *rest])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def truncated_png(path: Path, source: Path) -> None:
    """A PNG whose header is whole and whose pixel data stops half-way (a download cut short)."""
    data = source.read_bytes()
    path.write_bytes(data[:len(data) // 2])


@pytest.mark.parametrize('command', ['bicubic', 'crop'])
@pytest.mark.parametrize('broken', ['a_broken.png', 'z_broken.png'])  # sorted first or last: the same result
def test_a_damaged_image_is_reported_by_name_and_a_rerun_finishes_the_rest(hr, tmp_path, capfd, command, broken):
    truncated_png(hr / broken, hr / 't1.png')
    (hr / 'empty.png').write_bytes(b'')
    out = tmp_path / 'out'
    flags = ['--scale', '4'] if command == 'bicubic' else ['--crop-size', '32', '--step', '32']
    assert main([command, str(hr), str(out), *flags, '--workers', '2']) == 1
    err = capfd.readouterr().err  # file descriptor 2 itself: libpng prints there, not through Python
    assert f'basicsr prepare: error: cannot read {hr / broken}: not an image OpenCV can decode (corrupt, empty or ' \
           'unsupported): libpng error: PNG input buffer is incomplete\n' in err
    assert f'basicsr prepare: error: cannot read {hr / "empty.png"}: not an image OpenCV can decode (corrupt, ' \
           'empty or unsupported)\n' in err
    assert not any(line.startswith('libpng') for line in err.splitlines())
    made = sorted(p.name for p in out.iterdir())
    assert any(name.startswith('t1') for name in made) and any(name.startswith('t2') for name in made)
    assert not any(name.startswith(broken[:-4]) for name in made)

    (hr / broken).unlink()  # the user removes it; the same command, without --overwrite, finishes
    (hr / 'empty.png').unlink()
    assert main([command, str(hr), str(out), *flags, '--workers', '1']) == 0
    assert capfd.readouterr().out == (f'0 {"images" if command == "bicubic" else "sub-images"} written in {out}, '
                                      '2 image(s) skipped (outputs exist; --overwrite to replace them)\n')


@pytest.mark.parametrize('command', ['bicubic', 'crop'])
def test_images_smaller_than_the_scale_are_named_and_the_others_made(hr, tmp_path, capsys, command):
    # BasicSR's imresize failed on them with "min(): Expected reduction dim", and no image of the folder was written.
    for name, (h, w) in {'dot.png': (1, 1), 'tiny.png': (3, 3), 'strip.png': (2, 50), 'small.png': (7, 40)}.items():
        cv2.imwrite(str(hr / name), np.full((h, w, 3), 128, np.uint8))
    out = tmp_path / 'out'
    if command == 'bicubic':
        assert main(['bicubic', str(hr), str(out), '--scale', '4', '--workers', '1']) == 1
        err = capsys.readouterr().err
        for name, size in {'dot.png': '1x1', 'tiny.png': '3x3', 'strip.png': '50x2', 'small.png': '40x7'}.items():
            assert (f'basicsr prepare: error: {hr / name} is {size}: too small to downscale x4 (MATLAB bicubic needs '
                    'at least 8x8)') in err
        assert sorted(p.name for p in out.iterdir()) == ['t1.png', 't2.png']
    else:
        assert main(['crop', str(hr), str(out), '--crop-size', '32', '--step', '32', '--scale', '4',
                     '--workers', '1']) == 0
        assert ('4 image(s) smaller than the crop size 32 gave no sub-image: dot.png, small.png, strip.png, tiny.png'
                in capsys.readouterr().err)
        assert {p.name.split('_s')[0] for p in out.iterdir()} == {'t1', 't2'}


def test_crop_never_writes_into_its_input_folder(hr, tmp_path, capsys):
    # With the input folder as output and --overwrite, t1's first sub-image replaced the input t1_s001.png.
    cv2.imwrite(str(hr / 't1_s001.png'), np.zeros((40, 40, 3), np.uint8))
    before = {p.name: p.read_bytes() for p in hr.iterdir()}
    assert main(['crop', str(hr), str(hr), '--crop-size', '32', '--step', '32', '--overwrite']) == 2
    assert capsys.readouterr().err == (f'basicsr prepare: error: output folder {hr} is the input folder {hr}: its '
                                       'outputs would be read as inputs by the next run; choose another output '
                                       'folder\n')
    assert {p.name: p.read_bytes() for p in hr.iterdir()} == before


def test_two_inputs_writing_one_output_are_refused(hr, tmp_path, capsys):
    cv2.imwrite(str(hr / 't1.jpg'), cv2.imread(str(hr / 't1.png')))  # both would make t1.png
    assert main(['bicubic', str(hr), str(tmp_path / 'out'), '--scale', '4']) == 2
    assert 'would both be written to' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_an_image_too_large_for_memory_is_named_from_its_header(hr, tmp_path, capsys, monkeypatch):
    write_black_png(hr / 'bomb.png', 30000, 30000)
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 8 * 2**30)
    out = tmp_path / 'out'
    assert main(['bicubic', str(hr), str(out), '--scale', '4', '--workers', '1']) == 1
    assert (f'basicsr prepare: error: {hr / "bomb.png"}: 30000x30000 pixels would take about 14.2 GiB of memory to '
            'downscale x4; 4.0 GiB can be spared (of 8.0 GiB available). --max-pixels 900000000 would try anyway'
            in capsys.readouterr().err)
    assert sorted(p.name for p in out.iterdir()) == ['t1.png', 't2.png']


def test_a_folder_of_class_folders_needs_recursive(hr, tmp_path, capsys):
    (tmp_path / 'imagenet').mkdir()
    hr.rename(tmp_path / 'imagenet' / 'n01440764')
    meta = tmp_path / 'meta.txt'
    assert main(['meta-info', str(tmp_path / 'imagenet'), str(meta)]) == 2
    assert 'its sub-folders have images: pass --recursive' in capsys.readouterr().err
    assert main(['meta-info', str(tmp_path / 'imagenet'), str(meta), '--recursive']) == 0
    assert meta.read_text().splitlines()[0].startswith('n01440764/t1.png (')
