"""hat-sr upscale end to end with a tiny checkpoint in the released format: formats, skips, bad input, exit codes."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

import hat_arch
from hat_arch.cli import hat_sr_main
from hat_arch.cli import upscale as upscale_cli
from hat_arch.errors import HatError
from tests.conftest import DATA, load_golden
from tests.test_image_memory import write_black_png

HEAD = DATA / 'Set5' / 'LRbicx4' / 'head.png'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_x4.pth'
    torch.save({'params_ema': load_golden('tiny_x4')['params']}, path)  # as the reference code saves
    return path


def small_head(size=(20, 16)) -> np.ndarray:
    return cv2.resize(cv2.imread(str(HEAD)), size, interpolation=cv2.INTER_AREA)


def upscale(args: list, capsys) -> tuple[int, str]:
    code = hat_sr_main(['upscale', *map(str, args)])
    return code, capsys.readouterr().err


def test_the_released_format_upscales_like_the_network_with_no_flags(tmp_path, checkpoint, capsys):
    code, err = upscale([HEAD, '-o', tmp_path / 'out', '-m', checkpoint], capsys)
    assert code == 0, err
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['head.png']
    out = cv2.imread(str(tmp_path / 'out' / 'head.png'), cv2.IMREAD_UNCHANGED)
    case = load_golden('tiny_x4')
    model = hat_arch.HAT(**case['config']).eval()
    model.load_state_dict(case['params'])
    rgb = cv2.imread(str(HEAD))[..., ::-1].astype(np.float32) / 255
    with torch.no_grad():  # the network pads to the window multiple with reflection and crops, as the reference
        expected = model(torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()[..., ::-1]
    assert out.shape == (280, 280, 3) and out.dtype == np.uint8
    assert np.abs(out / 255.0 - np.clip(expected, 0, 1)).max() <= 1 / 255 + 1e-6
    assert '1 upscaled' in err and '1/1 [' in err  # the summary, and a tqdm bar


def test_formats_depths_and_channels_are_kept_and_a_corrupt_file_is_reported(tmp_path, checkpoint, capsys):
    inputs = tmp_path / 'in'
    inputs.mkdir()
    bgr = small_head()
    cv2.imwrite(str(inputs / 'colour.png'), bgr)
    cv2.imwrite(str(inputs / 'deep.png'), bgr.astype(np.uint16) * 257 + 100)
    cv2.imwrite(str(inputs / 'gray.png'), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    bgra = np.dstack([bgr, np.tile(np.linspace(0, 255, 20, dtype=np.uint8), (16, 1))])
    cv2.imwrite(str(inputs / 'alpha.png'), bgra)
    cv2.imwrite(str(inputs / 'photo.jpg'), bgr)
    (inputs / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    (inputs / 'notes.txt').write_text('not an image')  # folders give their images only

    code, err = upscale([inputs, '-o', tmp_path / 'out', '-m', checkpoint, '--suffix', '_x4'], capsys)
    assert code == 1
    assert 'broken.png' in err and '5 upscaled' in err and '1 failed' in err
    read = lambda name: cv2.imread(str(tmp_path / 'out' / name), cv2.IMREAD_UNCHANGED)  # noqa: E731
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'alpha_x4.png', 'colour_x4.png', 'deep_x4.png', 'gray_x4.png', 'photo_x4.jpg']
    model = hat_arch.load_model(checkpoint, device='cpu')
    np.testing.assert_array_equal(read('colour_x4.png'), hat_arch.upscale(model, bgr))
    assert read('deep_x4.png').dtype == np.uint16 and read('deep_x4.png').shape == (64, 80, 3)
    assert read('gray_x4.png').shape == (64, 80)
    alpha = read('alpha_x4.png')
    assert alpha.shape == (64, 80, 4)
    np.testing.assert_array_equal(alpha, hat_arch.upscale(model, bgra))
    assert read('photo_x4.jpg').shape == (64, 80, 3)


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, checkpoint, capsys):
    source = tmp_path / 'a.png'
    cv2.imwrite(str(source), small_head((8, 8)))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'a.png').write_bytes(b'mine')
    code, err = upscale([source, '-o', out, '-m', checkpoint], capsys)
    assert code == 0 and 'skip' in err and (out / 'a.png').read_bytes() == b'mine'
    code, err = upscale([source, '-o', out, '-m', checkpoint, '--overwrite'], capsys)
    assert code == 0 and cv2.imread(str(out / 'a.png')).shape == (32, 32, 3)


def test_globs_and_inputs_that_name_nothing(tmp_path, checkpoint, capsys):
    for name in ('x.png', 'y.png'):
        cv2.imwrite(str(tmp_path / name), small_head((8, 8)))
    code, err = upscale([tmp_path / '*.png', tmp_path / 'nothing' / '*.png', '-o', tmp_path / 'out', '-m',
                         checkpoint, '--ext', 'webp', '--tile', '8', '--tile-pad', '4'], capsys)
    assert code == 1 and '2 upscaled' in err
    assert f'hat-sr upscale: error: {tmp_path / "nothing" / "*.png"}: no such file, or no images there' in err
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['x.webp', 'y.webp']
    code, err = upscale([tmp_path / 'nothere.png', '-o', tmp_path / 'out', '-m', checkpoint], capsys)
    assert code == 2 and err == f'hat-sr upscale: error: {tmp_path / "nothere.png"}: no such file, or no images there\n'


def test_jpeg_cannot_take_transparency(tmp_path, checkpoint, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), np.dstack([small_head((8, 8)), np.eye(8, dtype=np.uint8) * 255]))
    code, err = upscale([tmp_path / 'a.png', '-o', tmp_path / 'out', '-m', checkpoint, '--ext', 'jpg'], capsys)
    assert code == 1 and 'a.png' in err and 'JPEG cannot store' in err
    assert not (tmp_path / 'out').exists()  # no partial files, and no folder either: nothing was written


def test_a_float_tiff_is_written_as_16_bit_png(tmp_path, checkpoint, capsys):
    # OpenCV writes a float array to PNG unscaled: [0, 1] values would come out as a black image.
    image = small_head((8, 8)).astype(np.float32) / 255
    assert cv2.imwrite(str(tmp_path / 'scan.tif'), image)
    code, err = upscale([tmp_path / 'scan.tif', '-o', tmp_path / 'out', '-m', checkpoint], capsys)
    assert code == 0, err
    out = cv2.imread(str(tmp_path / 'out' / 'scan.png'), cv2.IMREAD_UNCHANGED)
    expected = hat_arch.upscale(hat_arch.load_model(checkpoint, device='cpu'), image)
    assert out.dtype == np.uint16 and out.shape == (32, 32, 3)
    np.testing.assert_allclose(out / 65535, expected, atol=1 / 65535)
    assert out.mean() > 0.2 * 65535


@pytest.mark.parametrize('problem', ['output is a file', 'same names', 'replaces input', 'replaces another input',
                                     'bad checkpoint'])
def test_problems_found_before_any_work(tmp_path, checkpoint, capsys, problem):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for folder in ('a', 'b'):
        cv2.imwrite(str(tmp_path / folder / 'x.png'), small_head((8, 8)))
    if problem == 'replaces another input':
        cv2.imwrite(str(tmp_path / 'a' / 'x_x4.png'), small_head((8, 8)))
    args = {
        'output is a file': [tmp_path / 'a' / 'x.png', '-o', tmp_path / 'b' / 'x.png', '-m', checkpoint],
        'same names': [tmp_path / 'a', tmp_path / 'b', '-o', tmp_path / 'out', '-m', checkpoint],
        'replaces input': [tmp_path / 'a' / 'x.png', '-o', tmp_path / 'a', '-m', checkpoint, '--overwrite'],
        'replaces another input': [tmp_path / 'a', '-o', tmp_path / 'a', '-m', checkpoint, '--suffix', '_x4',
                                   '--overwrite'],  # x.png's output would be the input x_x4.png
        'bad checkpoint': [tmp_path / 'a' / 'x.png', '-o', tmp_path / 'out', '-m', tmp_path / 'a' / 'x.png'],
    }[problem]
    code, err = upscale(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('hat-sr upscale: error:')
    expected = {'output is a file': 'cannot write to output folder', 'same names': 'would both be written',
                'replaces input': 'would replace it', 'bad checkpoint': 'cannot read checkpoint',
                'replaces another input': f'would replace the input {tmp_path / "a" / "x_x4.png"}'}[problem]
    assert expected in lines[0]
    for image in tmp_path.glob('[ab]/*.png'):  # inputs untouched
        assert cv2.imread(str(image)).shape == (8, 8, 3)


@pytest.mark.parametrize('value', ['0', '-1', 'nan', 'x'])
def test_img_range_must_be_positive_even_when_every_output_exists(tmp_path, checkpoint, capsys, value):
    # 0 wrote near-white images; with the outputs already there, the model (and its check) was never built.
    cv2.imwrite(str(tmp_path / 'x.png'), small_head((8, 8)))
    (tmp_path / 'out').mkdir()
    (tmp_path / 'out' / 'x.png').write_bytes(b'mine')
    with pytest.raises(SystemExit):
        upscale([tmp_path / 'x.png', '-o', tmp_path / 'out', '-m', checkpoint, '--img-range', value], capsys)
    assert f"argument --img-range: expected a positive number, got '{value}'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path, checkpoint):
    # 30000x30000 zeros in a 1 MB PNG: decoded 0.9 GB, as float32 planes 7 GB, its x4 output 120000x120000.
    bomb = write_black_png(tmp_path / 'bomb.png', 30000, 30000)
    child = ('import resource, sys\n'
             'from hat_arch.cli import hat_sr_main\n'
             'start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n'
             'code = hat_sr_main()\n'
             'print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start)\n'
             'sys.exit(code)\n')

    def limit_address_space():  # should the check regress, fail at 8 GB rather than fill the machine
        resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, 8 * 2**30))

    run = subprocess.run([sys.executable, '-c', child, 'upscale', str(bomb), '-o', str(tmp_path / 'out'), '-m',
                          str(checkpoint), '--device', 'cpu'], capture_output=True, text=True, timeout=120,
                         preexec_fn=limit_address_space, env={**os.environ, 'OMP_NUM_THREADS': '1'})
    assert run.returncode == 1, run.stderr
    assert f'hat-sr upscale: error: {bomb}: 30000x30000 pixels would take about ' in run.stderr
    assert 'of memory to upscale x4;' in run.stderr and '--max-pixels 900000000 would try anyway' in run.stderr
    assert int(run.stdout.split()[-1]) * 1024 < 1.5 * 2**30  # peak memory beyond the start (ru_maxrss: KiB)
    assert not (tmp_path / 'out').exists()


def test_max_pixels_is_the_users_own_limit(tmp_path, checkpoint, capsys):
    cv2.imwrite(str(tmp_path / 'small.png'), small_head((8, 8)))
    cv2.imwrite(str(tmp_path / 'large.png'), small_head((20, 16)))
    code, err = upscale([tmp_path / 'small.png', tmp_path / 'large.png', '-o', tmp_path / 'out', '-m', checkpoint,
                         '--max-pixels', '100'], capsys)
    assert code == 1 and [p.name for p in (tmp_path / 'out').iterdir()] == ['small.png']
    assert f'hat-sr upscale: error: {tmp_path / "large.png"}: 20x16 is 320 pixels, more than --max-pixels 100' in err


def test_a_tile_below_the_window_is_refused_before_any_image(tmp_path, checkpoint, capsys):
    cv2.imwrite(str(tmp_path / 'a.png'), small_head((70, 70)))
    code, err = upscale([tmp_path / 'a.png', '-o', tmp_path / 'out', '-m', checkpoint, '--tile', '1'], capsys)
    assert code == 2 and err.strip().splitlines()[-1] == (
        "hat-sr upscale: error: tile 1 is smaller than the network's window of 8 pixels; use a tile of 8 or more "
        "(a multiple of it), 0 for the whole image, or 'auto'")
    assert not (tmp_path / 'out').exists()
    with pytest.raises(HatError, match='smaller than the network'):  # the library's own entry point: the same rule
        hat_arch.upscale(hat_arch.load_model(checkpoint, device='cpu'), small_head((8, 8)), tile=7)


@pytest.mark.parametrize('problem', ['model is a folder', 'meta device', 'every image fails', 'same names'])
def test_a_refused_run_creates_no_output_folder_and_names_the_problem(tmp_path, checkpoint, capsys, problem):
    (tmp_path / 'a').mkdir()
    (tmp_path / 'b').mkdir()
    for folder in ('a', 'b'):
        cv2.imwrite(str(tmp_path / folder / 'x.png'), small_head((8, 8)))
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0' * 40)
    out = tmp_path / 'new' / 'out'
    args, code, message = {
        'model is a folder': ([tmp_path / 'a', '-m', tmp_path / 'b'], 2,
                              f'hat-sr upscale: error: checkpoint {tmp_path / "b"} is a folder; name a checkpoint '
                              'file (.pth or .safetensors)'),
        'meta device': ([tmp_path / 'a', '-m', checkpoint, '--device', 'meta'], 2,
                        "hat-sr upscale: error: device 'meta' cannot compute (it holds no data); use 'cpu', 'cuda' "
                        "or 'auto'"),
        'every image fails': ([tmp_path / 'broken.png', '-m', checkpoint], 1, f'1 failed: {tmp_path / "broken.png"}'),
        'same names': ([tmp_path / 'a', tmp_path / 'b', '-m', checkpoint], 2, 'would both be written to'),
    }[problem]
    got, err = upscale([*args, '-o', out], capsys)
    assert got == code and message in err.strip().splitlines()[-1]
    assert not (tmp_path / 'new').exists()


def test_a_non_ascii_digit_tile_is_refused_with_the_flags_message(tmp_path, checkpoint, capsys):
    with pytest.raises(SystemExit):
        upscale([tmp_path, '-o', tmp_path / 'out', '-m', checkpoint, '--tile', '³'], capsys)
    err = capsys.readouterr().err
    assert "argument --tile: expected 'auto' or a number of pixels (0: no tiles), got '³'" in err
    assert '_tile' not in err


@pytest.mark.parametrize('where', ['named', 'in a folder'])
@pytest.mark.parametrize('extension', ['gif', 'tif'])
def test_a_multi_frame_image_says_only_its_first_frame_is_upscaled(tmp_path, checkpoint, capsys, where, extension):
    (tmp_path / 'in').mkdir()
    source = tmp_path / 'in' / f'clip.{extension}'
    frames = [Image.fromarray(np.full((8, 10, 3), value, np.uint8)) for value in (0, 120, 240)]
    frames[0].save(source, save_all=True, append_images=frames[1:])
    code, err = upscale([source if where == 'named' else source.parent, '-o', tmp_path / 'out', '-m', checkpoint],
                        capsys)
    assert code == 0, err
    assert (f'hat-sr upscale: warning: {source} has several frames (animated or multi-page); only the first is '
            'upscaled') in err
    assert cv2.imread(str(tmp_path / 'out' / 'clip.png')).shape == (32, 40, 3)


def test_each_image_shows_its_tiles_as_they_are_done(tmp_path, checkpoint, capsys, monkeypatch):
    bars = {}

    @contextmanager
    def progress_bar(description: str, unit: str, **options):
        reports = bars.setdefault((description, unit), [])
        yield lambda done, total: reports.append((done, total))

    monkeypatch.setattr(upscale_cli, 'progress_bar', progress_bar)
    code, err = upscale([HEAD, '-o', tmp_path, '-m', checkpoint, '--tile', '32', '--tile-pad', '4'], capsys)
    assert code == 0, err
    assert bars == {('head.png', 'tile'): [(done, 9) for done in range(10)]}  # 70 x 70 in 3 x 3 tiles of 32
    assert 'head.png: 70x70 -> 280x280 (9 network calls)' in err
