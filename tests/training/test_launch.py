"""training/launch.py: a pipeline run from a console script gives an exit status, user errors as one line, Ctrl-C and
SIGTERM as a stop with a note."""
from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from hat_arch.errors import HatError
from hat_arch.training.launch import run_pipeline


def test_the_pipeline_runs_in_the_current_folder_with_the_arguments(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    status = run_pipeline(lambda root, argv, prog: calls.append((root, argv, prog)), ['-opt', 'x.yml'], 'basicsr train')
    assert status == 0
    assert calls == [(str(tmp_path), ['-opt', 'x.yml'], 'basicsr train')]


def test_without_arguments_the_command_line_is_used(monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', 'y.yml'])
    calls = []
    run_pipeline(lambda root, argv, prog: calls.append(argv), None, 'basicsr test')
    assert calls == [['-opt', 'y.yml']]


def test_a_user_error_is_one_line_and_status_2(capsys):
    def pipeline(root, argv, prog):
        raise HatError('option file x.yml does not exist')

    assert run_pipeline(pipeline, [], 'basicsr train') == 2
    assert capsys.readouterr().err == 'basicsr train: error: option file x.yml does not exist\n'


@pytest.mark.parametrize('note, line', [
    ('', 'basicsr train: interrupted\n'),
    ('the last checkpoint is kept', 'basicsr train: interrupted; the last checkpoint is kept\n'),
])
def test_ctrl_c_is_status_130_with_the_pipelines_note(capsys, note, line):
    def pipeline(root, argv, prog):
        raise KeyboardInterrupt(note) if note else KeyboardInterrupt

    assert run_pipeline(pipeline, [], 'basicsr train') == 130
    assert capsys.readouterr().err == line


def test_sigterm_stops_the_pipeline_as_ctrl_c_does_with_status_143(capsys):
    def pipeline(root, argv, prog):
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises before this ends
        except KeyboardInterrupt as stop:  # what train_pipeline catches, to add its note
            raise type(stop)('the last checkpoint is kept') from None

    def unhandled(signum, frame):  # (what this test process would do without run_pipeline's handler: not die)
        raise AssertionError('SIGTERM reached the handler that was there before run_pipeline')

    before = signal.signal(signal.SIGTERM, unhandled)
    try:
        assert run_pipeline(pipeline, [], 'basicsr train') == 143
        assert signal.getsignal(signal.SIGTERM) is unhandled  # put back
    finally:
        signal.signal(signal.SIGTERM, before)
    assert capsys.readouterr().err == 'basicsr train: terminated; the last checkpoint is kept\n'
