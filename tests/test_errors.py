"""The error helpers: one line of an exception, and whether a folder can be written to."""
from __future__ import annotations

import os

import pytest

from hat_arch.errors import HatError, cannot_write, check_writable_folder, first_line


def test_first_line_of_an_error():
    assert first_line(RuntimeError('shape mismatch\n  at layer 3')) == 'shape mismatch'
    assert first_line(FileNotFoundError(2, 'No such file or directory', '/x/y')) == 'No such file or directory'
    assert first_line(ValueError()) == 'ValueError'


def test_cannot_write_creates_the_folder_and_leaves_nothing(tmp_path):
    folder = tmp_path / 'a' / 'b'
    assert cannot_write(folder) is None
    assert folder.is_dir() and os.listdir(folder) == []


def test_cannot_write_names_the_reason(tmp_path):
    (tmp_path / 'file').write_text('x')
    assert cannot_write(tmp_path / 'file') == 'File exists'
    assert cannot_write(tmp_path / 'missing', create=False) == 'No such file or directory'
    assert not (tmp_path / 'missing').exists()


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_cannot_write_in_a_read_only_folder(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert cannot_write(tmp_path) == 'Permission denied'
    finally:
        tmp_path.chmod(0o700)


def test_check_writable_folder_takes_a_folder_to_come_and_creates_nothing(tmp_path):
    check_writable_folder(tmp_path / 'new' / 'deeper')
    check_writable_folder(tmp_path)
    assert os.listdir(tmp_path) == []


def test_check_writable_folder_names_the_folder_and_the_reason(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(HatError) as error:
        check_writable_folder(tmp_path / 'file' / 'out')
    assert str(error.value) == f'cannot write to output folder {tmp_path / "file" / "out"}: Not a directory'
    with pytest.raises(HatError, match=r'^cannot write to figure folder .*file: Not a directory$'):
        check_writable_folder(tmp_path / 'file', what='figure folder')
