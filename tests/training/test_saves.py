"""Atomic checkpoints: a kill or a full disk at any instant leaves the previous checkpoint intact and loadable."""
from __future__ import annotations

import errno
import os
import signal
import time

import pytest
import torch

from hat_arch.errors import HatError
from hat_arch.train import main
from hat_arch.training import saves
from hat_arch.training.saves import CheckpointError, atomic_save, check_writable, remove_temporary_files
from tests.training.tiny import disk_full_after, one_thread, tiny_options, write_options


def snapshot(step: int) -> dict:
    return {'step': step, 'values': torch.full((1 << 19,), float(step))}


def test_kill_during_saves_never_leaves_a_torn_file(tmp_path):
    path = tmp_path / 'net_g_latest.pth'
    snapshots = [snapshot(0), snapshot(1)]  # built here: a forked child must not start torch's thread pool
    for delay in (0.05, 0.13, 0.31):
        pid = os.fork()
        if pid == 0:  # the child saves without pause until it is killed
            try:
                for step in range(10**6):
                    atomic_save(snapshots[step % 2], str(path))
            finally:
                os._exit(1)
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(delay)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        saved = torch.load(path, weights_only=True)
        assert torch.equal(saved['values'], torch.full_like(saved['values'], saved['step']))
        remove_temporary_files(str(tmp_path))
        assert [p.name for p in tmp_path.iterdir()] == ['net_g_latest.pth']


@pytest.mark.parametrize('failure', ['fsync', 'write'])
def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, failure):
    path = tmp_path / '4.state'
    atomic_save(snapshot(1), str(path))
    if failure == 'fsync':
        def full_disk(descriptor):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(os, 'fsync', full_disk)
    else:  # torch reports a failed write as a RuntimeError after writing part of the file
        def torn_save(obj, file):
            file.write(b'PK\x03\x04 partial')
            raise RuntimeError('[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0')
        monkeypatch.setattr(torch, 'save', torn_save)
    with pytest.raises(CheckpointError, match=r'cannot write .*4\.state: .*MiB free there\); the previous checkpoints'):
        atomic_save(snapshot(2), str(path))
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)['step'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['4.state']


def test_full_disk_during_training_stops_with_the_last_checkpoint_intact(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    yml = write_options(tmp_path, tiny_options('full', total_iter=6, save_every=2, validate_every=None))
    monkeypatch.setattr(saves.torch, 'save', disk_full_after(2))  # net_g_2.pth and 2.state fit
    with one_thread():
        assert main(['-opt', str(yml)]) == 2
    monkeypatch.undo()
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith('basicsr train: error: cannot write ') and 'net_g_4.pth: No space left on device' in error
    experiment = tmp_path / 'experiments' / 'full'
    assert sorted(p.name for p in (experiment / 'models').iterdir()) == ['net_g_2.pth']
    assert sorted(p.name for p in (experiment / 'training_states').iterdir()) == ['2.state']
    assert torch.load(experiment / 'training_states' / '2.state', weights_only=True)['iter'] == 2


def test_check_writable_reports_the_folder(tmp_path):
    blocker = tmp_path / 'experiments'
    blocker.write_text('a file where the experiment folder should be')
    with pytest.raises(HatError, match=r'cannot write to experiment folder .*experiments/x/models: Not a directory'):
        check_writable(str(blocker / 'x' / 'models'))
    with pytest.raises(HatError, match=r'not enough free space for checkpoints in .* MiB free'):
        check_writable(str(tmp_path / 'ok'), needed_bytes=1 << 62)
    check_writable(str(tmp_path / 'ok'), needed_bytes=1)
    assert list((tmp_path / 'ok').iterdir()) == []


@pytest.mark.parametrize('umask', [0o022, 0o002, 0o077], ids=oct)
def test_saved_files_get_the_mode_the_umask_gives_new_files(tmp_path, umask):
    previous = os.umask(umask)
    try:
        atomic_save(snapshot(1), str(tmp_path / 'net_g_2.pth'))
        (tmp_path / 'plain').touch()
    finally:
        os.umask(previous)
    assert oct((tmp_path / 'net_g_2.pth').stat().st_mode & 0o777) == oct(0o666 & ~umask)
    assert (tmp_path / 'net_g_2.pth').stat().st_mode == (tmp_path / 'plain').stat().st_mode


def test_the_umask_is_not_changed_by_a_save(tmp_path, monkeypatch):
    # Setting it to read it opened a window in which other threads' new files got the private mode 0600.
    monkeypatch.setattr(os, 'umask', lambda mask: pytest.fail('the umask was set'))
    atomic_save(snapshot(1), str(tmp_path / 'net_g_2.pth'))
