"""``hat-sr lam``: figure and JSON from a checkpoint and a Set5 image; bad input is a one-line error, nothing lost."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hat_arch import HAT
from hat_arch.cli import hat_sr_main
from hat_arch.cli.lam import main
from tests.conftest import DATA, TINY_HAT
from tests.test_image_memory import write_black_png

BUTTERFLY = DATA / 'Set5' / 'LRbicx4' / 'butterfly.png'  # 64x64


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    """A tiny x4 HAT saved as BasicSR saves it (``params``)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('model') / 'tiny_hat_x4.pth'
    torch.save({'params': HAT(**TINY_HAT).state_dict()}, path)
    return path


@pytest.fixture(scope='module')
def small_image(tmp_path_factory) -> Path:
    """A 16x16 crop of the butterfly, for the tests that only need the command to run."""
    path = tmp_path_factory.mktemp('image') / 'crop.png'
    cv2.imwrite(str(path), cv2.imread(str(BUTTERFLY))[:16, :16])
    return path


def test_lam_writes_figure_and_json_with_the_diffusion_index(checkpoint, tmp_path, capsys):
    figure = tmp_path / 'lam.png'
    argv = ['lam', '-m', str(checkpoint), '-i', str(BUTTERFLY), '--box', '120,120,16,16', '-o', str(figure),
            '--steps', '2', '--device', 'cpu']
    assert hat_sr_main(argv) == 0

    report = json.loads(figure.with_suffix('.json').read_text())
    assert 0 < report['diffusion_index'] < 100
    assert report['box'] == {'x': 120, 'y': 120, 'w': 16, 'h': 16, 'in': 'output pixels'}
    assert report['path'] == {'kind': 'gaussian blur', 'sigma': 1.2, 'kernel_size': 9, 'steps': 2}
    assert report['input_size'] == [64, 64] and report['output_size'] == [256, 256]
    image = cv2.imread(str(figure))
    assert image.shape == (22 + 256, 4 * 256 + 3 * 4, 3)
    assert f"DI {report['diffusion_index']:.2f}" in capsys.readouterr().out


def test_lam_reads_images_as_upscale_does_a_gray_float_tiff_too(checkpoint, small_image, tmp_path):
    gray = cv2.cvtColor(cv2.imread(str(small_image)), cv2.COLOR_BGR2GRAY).astype(np.float32) / 255
    cv2.imwrite(str(tmp_path / 'gray.tif'), gray)
    argv = ['-m', str(checkpoint), '-i', str(tmp_path / 'gray.tif'), '--box', '0,0,8,8', '-o', str(tmp_path / 'f.png'),
            '--steps', '1', '--device', 'cpu']
    assert main(argv) == 0  # it said 'is not an 8- or 16-bit image'
    output_panel = cv2.imread(str(tmp_path / 'f.png'))[22 + 10:, -64 + 10:]  # past the box's frame
    # Gray, as hat-sr upscale writes it (the mean of the model's RGB); it was the model's RGB for a gray input.
    assert (output_panel[..., 0] == output_panel[..., 1]).all() and (output_panel[..., 1] == output_panel[..., 2]).all()


def test_existing_outputs_are_kept_unless_overwrite(checkpoint, small_image, tmp_path, capsys):
    figure = tmp_path / 'crop_lam.png'
    figure.write_bytes(b'keep me')
    argv = ['-m', str(checkpoint), '-i', str(small_image), '--box', '0,0,8,8', '-o', str(tmp_path), '--steps', '1']
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and f'{figure} exists; pass --overwrite' in error
    assert figure.read_bytes() == b'keep me' and not figure.with_suffix('.json').exists()

    assert main(argv + ['--overwrite']) == 0
    assert cv2.imread(str(figure)) is not None and figure.with_suffix('.json').exists()


def test_the_figure_folder_is_made_and_an_unwritable_one_is_named_with_the_reason(checkpoint, small_image, tmp_path,
                                                                                 capsys):
    argv = ['-m', str(checkpoint), '-i', str(small_image), '--box', '0,0,8,8', '--steps', '1', '--device', 'cpu']
    (tmp_path / 'file').write_text('x')
    assert main(argv + ['-o', str(tmp_path / 'file' / 'f.png')]) == 2
    assert capsys.readouterr().err == (f'hat-sr lam: error: cannot write to output folder {tmp_path / "file"}: '
                                       'Not a directory\n')
    assert main(argv + ['-o', str(tmp_path / 'new' / 'f.png')]) == 0  # it said 'does not exist or is not writable'
    assert sorted(p.name for p in (tmp_path / 'new').iterdir()) == ['f.json', 'f.png']


@pytest.mark.parametrize('option, message', [(['--box', '1,2,3'], 'expected x,y,w,h'),
                                             (['--box', '0,0,0,4'], 'expected x,y,w,h'),
                                             (['--kernel-size', '8'], 'expected an odd number'),
                                             (['--alpha', '1.5'], 'expected a number in [0, 1]')])
def test_malformed_settings_are_refused_by_the_parser(option, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(['-m', 'x.pth', '-i', 'x.png', '--box', '0,0,4,4', *option])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_box_outside_the_output_and_unreadable_image_are_one_line_errors(checkpoint, small_image, tmp_path, capsys):
    argv = ['-m', str(checkpoint), '--box', '60,0,8,8', '-o', str(tmp_path / 'f.png'), '--steps', '1']
    assert main(argv + ['-i', str(small_image)]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'box x=60,y=0,w=8,h=8 reaches outside the 64x64' in error

    broken = tmp_path / 'broken.png'
    broken.write_bytes(b'not a png')
    assert main(argv + ['-i', str(broken)]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and f'cannot read {broken}' in error
    assert not (tmp_path / 'f.png').exists()


def test_an_image_too_large_for_memory_is_refused_from_its_header(checkpoint, tmp_path, capsys):
    bomb = write_black_png(tmp_path / 'bomb.png', 30000, 30000)
    argv = ['-m', str(checkpoint), '--box', '0,0,8,8', '-o', str(tmp_path / 'f.png'), '-i', str(bomb)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith(f'hat-sr lam: error: {bomb}: 30000x30000 pixels would take about ')
    assert error.count('\n') == 1
    assert 'of memory to attribute x4;' in error and not (tmp_path / 'f.png').exists()
    assert main(argv + ['--max-pixels', '1000']) == 2
    assert capsys.readouterr().err == (f'hat-sr lam: error: {bomb}: 30000x30000 is 900000000 pixels, more than '
                                       '--max-pixels 1000\n')
