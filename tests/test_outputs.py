"""outputs.py: the outputs a run plans never replace one of its inputs, nor each other."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hat_arch.errors import HatError
from hat_arch.outputs import check_outputs

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
