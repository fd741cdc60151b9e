"""training/options.py: option checks that need no training run."""
from __future__ import annotations

import sys

import pytest

from hat_arch.errors import HatError
from hat_arch.problems import Problems
from hat_arch.training.options import (_check_tile_options, check_force_yml, check_numbers, check_options,
                                       parse_options, read_option_file)
from tests.training.tiny import tiny_options, write_options


def test_tile_size_auto_is_accepted_and_other_words_are_not():
    problems = Problems()
    _check_tile_options({'tile_size': 'auto', 'tile_pad': 16}, 'test.yml', None, problems)
    _check_tile_options({'tile_size': None, 'tile_pad': None}, 'test.yml', None, problems)
    assert not problems
    _check_tile_options({'tile_size': 'big'}, 'test.yml', None, problems)
    assert problems.messages == ["option file test.yml: tile: tile_size: tile must be a positive number of pixels, "
                                 "0 / None (whole image) or 'auto', got 'big'"]


def test_parse_options_returns_basicsrs_options_with_the_flags_applied(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['pytest'])
    options = tiny_options('tiny_parse', total_iter=5)
    del options['logger']['use_tb_logger']
    path = write_options(tmp_path, options)
    opt, args = parse_options(['-opt', str(path), '--force_yml', 'train:total_iter=7'], str(tmp_path), True,
                              'basicsr train')
    assert opt['train']['total_iter'] == 7 and args.force_yml == ['train:total_iter=7']
    assert opt['dist'] is False and opt['logger']['use_tb_logger'] is False and opt['is_train'] is True
    assert opt['path']['experiments_root'] == str(tmp_path / 'experiments' / 'tiny_parse')
    assert opt['datasets']['train']['phase'] == 'train' and opt['datasets']['train']['scale'] == 4
    assert sys.argv == ['pytest'] and not (tmp_path / 'experiments').exists()  # BasicSR's argv restored; nothing made


def test_an_option_file_must_hold_a_mapping(tmp_path):
    path = tmp_path / 'o.yml'
    path.write_text('name: x\nscale: 4\nmodel_type: HATModel\n')
    assert read_option_file(str(path)) == {'name': 'x', 'scale': 4, 'model_type': 'HATModel'}
    path.write_text('- a list\n')
    with pytest.raises(HatError, match=r'o\.yml holds no options \(expected a mapping of keys such as name'):
        read_option_file(str(path))


def test_an_option_file_nested_without_bound_is_one_line(tmp_path):
    # PyYAML refuses 1000 levels itself, but composes 999 recursively: a RecursionError traceback.
    path = tmp_path / 'deep.yml'
    path.write_text('name: ' + '[' * 999 + ']' * 999 + '\n')
    with pytest.raises(HatError, match=r'^option file \S*deep\.yml is nested too deeply to be options$'):
        read_option_file(str(path))


def test_checks_depend_on_the_pipeline_and_accept_any_network_key():
    opt = tiny_options(network_d={'type': 'UNetDiscriminatorSN', 'num_in_ch': 3})
    check_options(opt, 'train.yml', is_train=True)  # network_d is a network key; UNetDiscriminatorSN is BasicSR's
    del opt['val']
    check_options(opt, 'train.yml', is_train=True)  # training validates only if asked
    with pytest.raises(HatError, match=r'^option file test\.yml: missing required key\(s\) val$'):
        check_options(opt, 'test.yml', is_train=False)


def test_numbers_read_as_text_are_found_anywhere_but_in_names():
    problems = Problems()
    check_numbers({'name': '1e5', 'train': {'lr': 1.0e-4, 'milestones': [1, 2]}}, 'o.yml', problems)
    assert not problems
    check_numbers({'train': {'scheduler': {'milestones': [100, '3E5']}}}, 'o.yml', problems)
    assert len(problems) == 1
    assert problems.messages[0].startswith("option file o.yml: train: scheduler: milestones[1] is the text '3E5'")


def test_force_yml_entries_must_name_a_mapping_that_exists():
    opt = {'train': {'ema_decay': 0.9, 'optim_g': {'lr': 1.0e-4}}, 'name': 'x'}
    check_force_yml(['train:optim_g:lr=2.0e-4', 'train:new_key=1', 'name=y'], opt)
    with pytest.raises(HatError, match=r'^--force_yml name:sub=1: name is not a mapping$'):
        check_force_yml(['name:sub=1'], opt)
    with pytest.raises(HatError, match=r'^--force_yml train:optim_d:lr=1: the option file has no train:optim_d$'):
        check_force_yml(['train:optim_d:lr=1'], opt)
