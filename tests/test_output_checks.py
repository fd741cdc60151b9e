"""output_checks.py: the folder a run writes to takes files; the outputs it plans never replace one of its inputs,
nor each other."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hat_arch.errors import HatError
from hat_arch.output_checks import cannot_write, check_outputs, check_writable_folder

HINT = 'choose another --output folder'


def test_distinct_outputs_beside_their_inputs_pass(tmp_path):
    check_outputs([(tmp_path / 'a.png', tmp_path / 'out' / 'a.png'), (tmp_path / 'b.png', tmp_path / 'b_x4.png')], HINT)


def test_an_output_replacing_its_own_input_is_refused(tmp_path):
    with pytest.raises(HatError, match=rf'^the output of {tmp_path}/a\.png would replace it; {HINT}$'):
        check_outputs([(tmp_path / 'a.png', tmp_path / 'x' / '..' / 'a.png')], HINT)


def test_an_output_replacing_another_input_is_refused(tmp_path):
    pairs = [(tmp_path / 'a.png', tmp_path / 'b.png'), (tmp_path / 'b.png', tmp_path / 'c.png')]
    with pytest.raises(HatError, match=rf'^the output of {tmp_path}/a\.png would replace the input {tmp_path}/b\.png'):
        check_outputs(pairs, HINT)


def test_two_inputs_written_to_one_file_are_refused(tmp_path):
    pairs = [(tmp_path / 'a.png', tmp_path / 'out.png'), (tmp_path / 'a.jpg', tmp_path / 'out.png')]
    with pytest.raises(HatError, match=rf'^{tmp_path}/a\.png and {tmp_path}/a\.jpg would both be written to '):
        check_outputs(pairs, HINT)


def test_a_folder_reached_through_a_link_is_the_same_folder(tmp_path):
    os.symlink(tmp_path, tmp_path / 'link')
    with pytest.raises(HatError, match='would replace it'):
        check_outputs([(tmp_path / 'a.png', Path(tmp_path / 'link' / 'a.png'))], HINT)


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
