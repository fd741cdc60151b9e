"""A run owns its folder: a second run of the same name is refused naming the live one, and nothing of a live run is
renamed; a lock left by a killed run blocks nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
import torch

from hat_arch import test as test_command
from hat_arch import train
from hat_arch.errors import HatError
from hat_arch.train import main
from hat_arch.folder_lock import lock_path
from hat_arch.training.run_folder import hold_run_folder
from tests.training.tiny import console_script, one_thread, read_log, subprocess_env, tiny_options, write_options


def test_a_second_run_is_refused_naming_the_live_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = str(tmp_path / 'experiments' / 'live')
    with hold_run_folder(folder, ['basicsr', 'train', '-opt', 'a b.yml']):
        with pytest.raises(HatError) as refusal, hold_run_folder(folder, ['basicsr', 'train', '-opt', 'other.yml']):
            pass
    message = str(refusal.value)
    assert message.startswith(f'experiments/live belongs to a run that is still going (pid {os.getpid()} on ')
    assert message.endswith(": basicsr train -opt 'a b.yml'); wait for it to end or stop it, or give this run "
                            'another name')
    assert not os.path.exists(lock_path(folder))  # released: the next run takes it
    with hold_run_folder(folder, ['basicsr', 'train']):
        assert os.path.isfile(lock_path(folder))


def test_a_lock_left_by_a_killed_run_blocks_nothing(tmp_path):
    folder = str(tmp_path / 'experiments' / 'killed')
    ready_read, ready_write = os.pipe()
    child = os.fork()
    if child == 0:  # the run that is killed while it holds the folder
        try:
            with hold_run_folder(folder, ['basicsr', 'train']):
                os.write(ready_write, b'1')
                signal.pause()
        finally:
            os._exit(1)
    try:
        assert os.read(ready_read, 1) == b'1'
        with pytest.raises(HatError, match=f'still going \\(pid {child} '), hold_run_folder(folder, ['again']):
            pass
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    assert os.path.isfile(lock_path(folder))  # left behind by the kill...
    with hold_run_folder(folder, ['basicsr', 'train']):  # ...and taken over
        assert f'pid {os.getpid()} ' in open(lock_path(folder)).read()


def test_a_test_run_does_not_archive_the_results_of_a_live_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('evaluated')
    test_opt = {key: opt[key] for key in ('name', 'model_type', 'scale', 'num_gpu', 'network_g', 'val')}
    test_opt.update(datasets={'test_1': opt['datasets']['val']}, path={'pretrain_network_g': None})
    write_options(tmp_path, test_opt, 'test.yml')
    results = tmp_path / 'results' / 'evaluated'
    (results / 'visualization').mkdir(parents=True)
    with hold_run_folder(str(results), ['basicsr', 'test', '-opt', 'test.yml']):
        assert test_command.main(['-opt', 'test.yml']) == 2
    assert 'basicsr test: error: results/evaluated belongs to a run that is still going' in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / 'results').iterdir()) == ['evaluated']  # nothing archived
    assert (results / 'visualization').is_dir()


@pytest.mark.slow  # trains, and starts a second run
def test_a_second_training_of_the_same_name_leaves_the_live_one_whole(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options('shared', total_iter=2, save_every=2, validate_every=None))
    second = []
    check = train.NonFiniteGuard.check

    def check_then_start_another(self, current_iter, *args):
        check(self, current_iter, *args)
        if current_iter == 1:  # the first run is live: the same command again
            second.append(subprocess.run([console_script('basicsr'), 'train', '-opt', 'tiny.yml'], cwd=tmp_path,
                                         env=subprocess_env(), capture_output=True, text=True, timeout=300))

    monkeypatch.setattr(train.NonFiniteGuard, 'check', check_then_start_another)
    with one_thread():
        assert main(['-opt', 'tiny.yml']) == 0
    assert second[0].returncode == 2
    assert second[0].stderr == (f'basicsr train: error: experiments/shared belongs to a run that is still going (pid '
                                f'{os.getpid()} on {os.uname().nodename}, started '
                                f'{second[0].stderr.split(", started ")[1].split(": ")[0]}: basicsr train -opt '
                                'tiny.yml); wait for it to end or stop it, or give this run another name\n')
    assert sorted(p.name for p in (tmp_path / 'experiments').iterdir()) == ['shared']  # nothing archived, no lock
    experiment = tmp_path / 'experiments' / 'shared'
    assert sorted(p.name for p in (experiment / 'models').iterdir()) == ['net_g_2.pth', 'net_g_latest.pth']
    assert read_log(experiment).splitlines()[-1].endswith(
        'Upscale images with this model: hat-sr upscale IMAGE -o OUTDIR -m experiments/shared/models/net_g_latest.pth')


@pytest.mark.slow  # trains in a child process
def test_sigterm_stops_training_with_its_checkpoint_and_the_command_that_continues(tmp_path):
    write_options(tmp_path, tiny_options('stopped', total_iter=10**6, save_every=1, validate_every=None))
    states = tmp_path / 'experiments' / 'stopped' / 'training_states'
    run = subprocess.Popen([console_script('basicsr'), 'train', '-opt', 'tiny.yml'], cwd=tmp_path,
                           env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (states / '2.state').exists() or run.poll() is not None)
        run.send_signal(signal.SIGTERM)
        stderr = run.communicate(timeout=120)[1]
    finally:
        run.kill()
    assert run.returncode == 143, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    kept = int(last.split('the checkpoint of iteration ')[1].split()[0])
    assert last == (f'basicsr train: terminated; the checkpoint of iteration {kept} is kept (experiments/stopped/'
                    f'training_states/{kept}.state, experiments/stopped/models/net_g_{kept}.pth); continue with: '
                    'basicsr train -opt tiny.yml --auto_resume')
    assert torch.load(states / f'{kept}.state', weights_only=True)['iter'] == kept
    assert not os.path.exists(lock_path(str(states.parent)))


def wait_for(condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, 'timed out'
        time.sleep(0.2)
