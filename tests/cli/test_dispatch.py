"""The console scripts' dispatcher: the process set-up it does when run as a command, and only then."""
from __future__ import annotations

import os
import sys

import pytest

import hat_arch_launcher as cli
from hat_arch import process_setup

VARIABLE = 'THP_MEM_ALLOC_ENABLE'


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """A stand-in for the kernel's transparent-huge-page setting, and no THP_MEM_ALLOC_ENABLE in the environment."""
    setting = tmp_path / 'enabled'
    monkeypatch.setattr(process_setup, 'THP_SETTING', setting)
    monkeypatch.setenv(VARIABLE, 'placeholder')  # so that the variable is removed again after the test
    monkeypatch.delenv(VARIABLE)
    return setting


def run_as_command(monkeypatch, main, *args: str) -> None:
    monkeypatch.setattr(sys, 'argv', ['hat-sr', *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0


@pytest.mark.parametrize('main', [cli.hat_sr_main, cli.basicsr_main])
def test_commands_ask_for_huge_pages_where_the_kernel_has_them(kernel, monkeypatch, main):
    kernel.write_text('always [madvise] never\n')
    run_as_command(monkeypatch, main, '--help')
    assert os.environ[VARIABLE] == '1'


def test_no_huge_pages_where_the_kernel_has_none_or_they_are_off(kernel, monkeypatch):
    run_as_command(monkeypatch, cli.hat_sr_main, '--help')  # no such file: not Linux, or no THP in the kernel
    assert VARIABLE not in os.environ
    kernel.write_text('always madvise [never]\n')
    run_as_command(monkeypatch, cli.hat_sr_main, '--help')
    assert VARIABLE not in os.environ


def test_the_users_choice_is_kept(kernel, monkeypatch):
    kernel.write_text('[always] madvise never\n')
    monkeypatch.setenv(VARIABLE, '0')
    run_as_command(monkeypatch, cli.hat_sr_main, '--help')
    assert os.environ[VARIABLE] == '0'


def test_called_from_python_the_process_is_left_alone(kernel, capsys):
    kernel.write_text('[always] madvise never\n')
    assert cli.hat_sr_main([]) == 2  # no command: the help, and nothing else
    assert 'upscale' in capsys.readouterr().out
    assert VARIABLE not in os.environ
