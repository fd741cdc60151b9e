"""A run that stops says what it keeps: Ctrl-C names the checkpoint and the command that continues (or says there is
none yet), --auto_resume with nothing to resume says so, and a failed validation first saves its iteration."""
from __future__ import annotations

import pytest
import torch

from hat_arch import train
from hat_arch.train import main
from tests.training.tiny import one_thread, read_log, tiny_options, write_options

pytestmark = pytest.mark.slow


def interrupt_at(monkeypatch, iteration: int) -> None:
    """Ctrl-C during the given iteration (after its step, before its checkpoint)."""
    check = train.NonFiniteGuard.check

    def check_then_interrupt(self, current_iter, *args):
        check(self, current_iter, *args)
        if current_iter == iteration:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.NonFiniteGuard, 'check', check_then_interrupt)


def last_line_after_ctrl_c(tmp_path, monkeypatch, capsys, name: str, iteration: int) -> str:
    """What ``basicsr train`` prints last when Ctrl-C comes at ``iteration`` of a run saving every 2."""
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options(name, total_iter=4, save_every=2, validate_every=None))
    interrupt_at(monkeypatch, iteration)
    with one_thread():
        assert main(['-opt', 'tiny.yml']) == 130
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_ctrl_c_before_the_first_checkpoint_says_there_is_none(tmp_path, monkeypatch, capsys):
    assert last_line_after_ctrl_c(tmp_path, monkeypatch, capsys, 'early', 1) == (
        'basicsr train: interrupted; no checkpoint was saved yet (the first comes at iteration 2): the same command '
        'starts the run again')


def test_ctrl_c_of_a_rerun_says_where_basicsr_moved_the_earlier_run(tmp_path, monkeypatch, capsys):
    earlier = tmp_path / 'experiments' / 'again'
    (earlier / 'models').mkdir(parents=True)
    (earlier / 'models' / 'net_g_latest.pth').write_bytes(b'the earlier run')
    line = last_line_after_ctrl_c(tmp_path, monkeypatch, capsys, 'again', 1)
    archived = [p for p in (tmp_path / 'experiments').iterdir() if p.name.startswith('again_archived_')]
    assert len(archived) == 1 and (archived[0] / 'models' / 'net_g_latest.pth').read_bytes() == b'the earlier run'
    assert line.endswith(f'starts the run again; the earlier run of this name is in experiments/{archived[0].name}')


def test_ctrl_c_names_the_kept_checkpoint_and_the_command_that_continues(tmp_path, monkeypatch, capsys):
    assert last_line_after_ctrl_c(tmp_path, monkeypatch, capsys, 'late', 3) == (
        'basicsr train: interrupted; the checkpoint of iteration 2 is kept (experiments/late/training_states/2.state, '
        'experiments/late/models/net_g_2.pth); continue with: basicsr train -opt tiny.yml --auto_resume')
    with one_thread():
        assert main(['-opt', 'tiny.yml', '--auto_resume']) == 0
    assert 'Resuming training from epoch: 0, iter: 2.' in read_log(tmp_path / 'experiments' / 'late')


def test_auto_resume_with_nothing_to_resume_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options('fresh', total_iter=1, save_every=1, validate_every=None))
    with one_thread():
        assert main(['-opt', 'tiny.yml', '--auto_resume']) == 0
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith('basicsr train:')]
    assert said == [f'basicsr train: --auto_resume: nothing to resume (no complete training state in '
                    f'{tmp_path}/experiments/fresh/training_states); training starts from iteration 0']


def test_a_failed_validation_saves_its_iteration_before_the_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options('valfail', total_iter=4, save_every=4, validate_every=2))

    def failing_validation(*args):
        raise RuntimeError('the metric failed')

    monkeypatch.setattr(train, 'validate', failing_validation)
    with one_thread(), pytest.raises(RuntimeError, match='the metric failed'):
        main(['-opt', 'tiny.yml'])
    experiment = tmp_path / 'experiments' / 'valfail'
    assert torch.load(experiment / 'training_states' / '2.state', weights_only=True)['iter'] == 2
    assert (experiment / 'models' / 'net_g_2.pth').is_file()
    assert 'Validation failed at iteration 2: saving its checkpoint first.' in read_log(experiment)
