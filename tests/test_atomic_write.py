"""The one atomic writer: exclusive, unpredictable temporary names in the target's folder, no link followed, renamed
over the target; leftovers of killed writes cleaned; names that fit the file system whatever the target's length."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from hat_arch import atomic_write
from hat_arch.atomic_write import AtomicWriteError, remove_leftovers, temporary_name, write_atomic, write_bytes_atomic
from hat_arch.cli import hat_sr_main
from tests.conftest import DATA, ROOT, load_golden

HEAD = DATA / 'Set5' / 'LRbicx4' / 'head.png'


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_x4.pth'
    torch.save({'params_ema': load_golden('tiny_x4')['params']}, path)
    return path


def victim(folder: Path) -> Path:
    path = folder / 'victim.txt'
    path.write_text('precious')
    return path


def plant_link(at: Path, to: Path) -> None:
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(to)


def fixed_names(monkeypatch, *digits: str) -> None:
    """The writer's random parts, in order: an attacker who guessed them plants there first."""
    draws = iter(digits)
    monkeypatch.setattr(atomic_write.secrets, 'token_hex', lambda n: next(draws))


def test_a_link_at_the_target_is_replaced_never_written_through(tmp_path):
    precious = victim(tmp_path)
    plant_link(tmp_path / 'out' / 'result.png', precious)
    write_bytes_atomic(tmp_path / 'out' / 'result.png', b'new')
    assert precious.read_text() == 'precious'
    assert not (tmp_path / 'out' / 'result.png').is_symlink()
    assert (tmp_path / 'out' / 'result.png').read_bytes() == b'new'


def test_a_link_or_file_at_the_temporary_name_is_never_opened(tmp_path, monkeypatch):
    """O_EXCL | O_NOFOLLOW: a name taken (by a link, or a file) is passed over, untouched, for the next one."""
    precious = victim(tmp_path)
    plant_link(tmp_path / temporary_name_with('result.png', 'aaaaaaaa'), precious)
    (tmp_path / temporary_name_with('result.png', 'bbbbbbbb')).write_text('someone else\'s')
    fixed_names(monkeypatch, 'aaaaaaaa', 'bbbbbbbb', 'cccccccc')
    write_bytes_atomic(tmp_path / 'result.png', b'new')
    assert precious.read_text() == 'precious'
    assert (tmp_path / temporary_name_with('result.png', 'bbbbbbbb')).read_text() == 'someone else\'s'
    assert (tmp_path / 'result.png').read_bytes() == b'new'
    assert not (tmp_path / temporary_name_with('result.png', 'cccccccc')).exists()


def temporary_name_with(name: str, digits: str) -> str:
    return f'.{name}.{digits}{atomic_write.TEMPORARY_SUFFIX}'


def test_temporary_names_are_unpredictable_and_fit_whatever_the_target(tmp_path):
    names = {temporary_name('result.png') for _ in range(100)}
    assert len(names) == 100 and all(atomic_write.LEFTOVER.match(name) for name in names)
    for name in ('a' * 251 + '.png', 'é' * 120 + '.png'):  # 255 bytes each: the longest name ext4 takes
        assert len(os.fsencode(temporary_name(name))) <= 255
        write_bytes_atomic(tmp_path / name, b'x')
        assert (tmp_path / name).read_bytes() == b'x'


def test_a_failed_write_leaves_the_target_and_no_temporary_file(tmp_path):
    (tmp_path / 'result.json').write_text('old')

    def fail(file):
        file.write(b'half')
        raise OSError(28, 'No space left on device')

    with pytest.raises(AtomicWriteError, match=r'^cannot write .*result\.json: No space left on device$'):
        write_atomic(tmp_path / 'result.json', fail)
    assert [p.name for p in tmp_path.iterdir()] == ['result.json']
    assert (tmp_path / 'result.json').read_text() == 'old'


def test_leftovers_older_than_the_writer_are_removed_and_nothing_else(tmp_path):
    old = time.time() - 3600
    leftover = tmp_path / temporary_name_with('net_g_6.pth', '0a1b2c3d')
    live = tmp_path / temporary_name_with('other.png', '4e5f6a7b')  # another process writing now
    kept = [tmp_path / '.notes.tmp', tmp_path / 'photo.hat-partial', tmp_path / '.a.0a1b2c3d.hat-partial.png']
    for path in (leftover, live, *kept):
        path.write_bytes(b'x')
    precious = victim(tmp_path)
    plant_link(tmp_path / temporary_name_with('link', '5e5f6a7b'), precious)
    for path in (leftover, *kept, precious, tmp_path / temporary_name_with('link', '5e5f6a7b')):
        os.utime(path, (old, old), follow_symlinks=False)
    write_bytes_atomic(tmp_path / 'result.png', b'new')
    assert not leftover.exists()
    assert live.exists() and all(path.exists() for path in kept)
    assert precious.read_text() == 'precious'
    assert remove_leftovers(tmp_path) == []  # a folder is looked at once per process


@pytest.mark.slow  # spawns processes
def test_a_write_killed_mid_way_is_cleaned_by_the_next_run(tmp_path):
    stuck = ('import sys, time\nfrom hat_arch.atomic_write import write_atomic\n'
             "write_atomic(sys.argv[1], lambda file: (file.write(b'half'), file.flush(), time.sleep(600)))\n")
    writer = subprocess.Popen([sys.executable, '-c', stuck, str(tmp_path / 'big.pth')], cwd=ROOT)
    deadline = time.time() + 60
    while not list(tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    writer.kill()
    writer.wait()
    (leftover, ) = tmp_path.iterdir()
    assert atomic_write.LEFTOVER.match(leftover.name) and leftover.name.startswith('.big.pth.')
    next_run = ("import sys\nfrom hat_arch.atomic_write import write_bytes_atomic\n"
                "write_bytes_atomic(sys.argv[1], b'done')")
    subprocess.run([sys.executable, '-c', next_run, str(tmp_path / 'other.png')], cwd=ROOT, check=True)
    assert [p.name for p in tmp_path.iterdir()] == ['other.png']


def test_upscale_writes_through_no_link_planted_where_it_writes(tmp_path, checkpoint, capsys):
    precious = victim(tmp_path)
    out = tmp_path / 'out'
    plant_link(out / 'head.png', precious)  # the output itself (replaced with --overwrite)
    plant_link(out / f'.head.{os.getpid()}.partial.png', precious)  # the temporary name main used
    assert hat_sr_main(['upscale', str(HEAD), '-o', str(out), '-m', str(checkpoint), '--overwrite']) == 0
    assert precious.read_text() == 'precious'
    assert not (out / 'head.png').is_symlink() and (out / 'head.png').stat().st_size > 1000


def test_an_input_name_that_fits_as_an_output_name_works(tmp_path, checkpoint, capsys):
    # The temporary name was 20 characters longer than the output's: 'File name too long' after the model ran.
    source = tmp_path / f'{"a" * 244}.png'
    source.write_bytes(HEAD.read_bytes())
    assert hat_sr_main(['upscale', str(source), '-o', str(tmp_path / 'out'), '-m', str(checkpoint)]) == 0
    assert [p.name for p in (tmp_path / 'out').iterdir()] == [source.name]


def test_lam_and_export_write_through_no_planted_link(tmp_path, checkpoint, capsys):
    pytest.importorskip('onnx')
    precious = victim(tmp_path)
    plant_link(tmp_path / 'l.json', precious)
    plant_link(tmp_path / 'l.png', precious)
    assert hat_sr_main(['lam', '-m', str(checkpoint), '-i', str(HEAD), '--box', '0,0,8,8', '--steps', '2',
                        '-o', str(tmp_path / 'l.png'), '--overwrite']) == 0
    plant_link(tmp_path / 'x.onnx', precious)
    plant_link(tmp_path / '.x.onnx.partial', precious)  # the fixed temporary name main used
    assert hat_sr_main(['export', '-m', str(checkpoint), '--onnx', str(tmp_path / 'x.onnx'), '--overwrite',
                        '--no-verify']) == 0
    assert precious.read_text() == 'precious'
    assert '"diffusion_index"' in (tmp_path / 'l.json').read_text()
    assert not any(path.is_symlink() for path in (tmp_path / 'l.json', tmp_path / 'l.png', tmp_path / 'x.onnx'))


def test_basicsr_result_images_and_the_option_copy_go_through_the_writer(tmp_path, monkeypatch):
    import basicsr.models.sr_model
    import basicsr.utils
    from basicsr.models.sr_model import SRModel

    from hat_arch.image_io import basicsr_imwrite
    from hat_arch.models.hat_model import HATModel
    from hat_arch.train import copy_options_file
    from hat_arch.training.basicsr_overrides import atomic_image_writes

    stock = basicsr.utils.img_util.imwrite
    assert basicsr.models.sr_model.imwrite is basicsr.utils.imwrite is stock is not basicsr_imwrite  # imported only
    precious = victim(tmp_path)
    plant_link(tmp_path / 'visualization' / 'head_6.png', precious)
    later = types.ModuleType('basicsr.imported_inside')  # a module first imported inside the block
    with monkeypatch.context() as inside, atomic_image_writes():
        assert basicsr.models.sr_model.imwrite is basicsr.utils.imwrite is basicsr_imwrite
        basicsr.models.sr_model.imwrite(np.zeros((4, 4, 3), np.uint8), str(tmp_path / 'visualization' / 'head_6.png'))
        with atomic_image_writes():  # nested: the outer block puts BasicSR's back
            later.imwrite = basicsr.utils.imwrite
            inside.setitem(sys.modules, later.__name__, later)
        assert basicsr.models.sr_model.imwrite is basicsr_imwrite
    assert basicsr.models.sr_model.imwrite is basicsr.utils.imwrite is later.imwrite is stock
    seen = []  # HATModel's validation, wherever it runs, writes through it too
    monkeypatch.setattr(SRModel, 'nondist_validation', lambda *args: seen.append(basicsr.models.sr_model.imwrite))
    HATModel.nondist_validation(HATModel.__new__(HATModel), None, 0, None, True)
    assert seen == [basicsr_imwrite] and basicsr.models.sr_model.imwrite is stock
    (tmp_path / 'train.yml').write_text('name: x\n')
    plant_link(tmp_path / 'run' / 'train.yml', precious)
    copy_options_file(str(tmp_path / 'train.yml'), str(tmp_path / 'run'))
    assert precious.read_text() == 'precious'
    assert (tmp_path / 'run' / 'train.yml').read_text().endswith('\n\nname: x\n')


@pytest.mark.parametrize('number', [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_write_waits_for_it_then_reaches_its_handler(tmp_path, number):
    class Stopped(BaseException):
        pass

    def stop(signum, frame):
        raise Stopped(signum)

    def write(file):
        file.write(b'first half, ')
        os.kill(os.getpid(), number)  # as Ctrl-C or a scheduler's SIGTERM would, mid-write
        file.write(b'second half')

    previous = signal.signal(number, stop)
    try:
        with pytest.raises(Stopped):
            atomic_write.write_atomic(tmp_path / 'state', write)
    finally:
        signal.signal(number, previous)
    assert (tmp_path / 'state').read_bytes() == b'first half, second half'
    assert signal.getsignal(number) is previous
