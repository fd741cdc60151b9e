"""Recipes fail once, with everything: an option file's missing paths and bad keys are all reported in one run."""
from __future__ import annotations

import shutil

import pytest

from hat_arch import test as test_command
from hat_arch.errors import HatError
from hat_arch.problems import Problems
from hat_arch.train import main as train_main
from hat_arch.training.options import check_options
from tests.conftest import DATA, ROOT
from tests.training.tiny import tiny_options, write_options


def test_one_problem_is_its_own_line_and_several_are_listed_under_their_file():
    problems = Problems()
    problems.raise_if_any('option file a.yml')  # none: nothing raised
    problems.add('option file a.yml: unknown top-level key vall')
    with pytest.raises(HatError, match='^option file a.yml: unknown top-level key vall$'):
        problems.raise_if_any('option file a.yml')
    with problems.collect():
        raise HatError('datasets: val: dataroot_gt: folder x does not exist')
    problems.add('option file a.yml: unknown top-level key vall')  # the same problem, found twice
    with pytest.raises(HatError) as error:
        problems.raise_if_any('option file a.yml')
    assert str(error.value) == ('option file a.yml has 2 problems:\n  unknown top-level key vall\n'
                                '  datasets: val: dataroot_gt: folder x does not exist')


def test_a_broken_structure_is_reported_with_the_other_top_level_problems():
    opt = tiny_options()
    del opt['datasets'], opt['logger']
    opt['vall'] = opt.pop('val')
    with pytest.raises(HatError) as error:
        check_options(opt, 'b.yml', is_train=True)
    assert str(error.value) == ("option file b.yml has 2 problems:\n  unknown top-level key 'vall' (did you mean "
                                "'val'?)\n  missing required key(s) datasets, logger")


def test_the_test_recipe_names_every_missing_data_set_and_checkpoint_at_once(tmp_path, monkeypatch, capsys):
    # As a user who has only the shipped Set5 and Set14 and no checkpoint yet runs it (HAT-S_SRx4.yml named its three
    # missing data sets in three runs)
    (tmp_path / 'datasets').mkdir()
    for name in ('Set5', 'Set14'):
        (tmp_path / 'datasets' / name).symlink_to(DATA / name)
    shutil.copy(ROOT / 'options' / 'test' / 'HAT-S_SRx4.yml', tmp_path)
    monkeypatch.chdir(tmp_path)
    assert test_command.main(['-opt', 'HAT-S_SRx4.yml']) == 2
    assert capsys.readouterr().err == (
        'basicsr test: error: option file HAT-S_SRx4.yml has 7 problems:\n'
        '  datasets: test_3: dataroot_gt: folder datasets/Urban100/GTmod4 does not exist\n'
        '  datasets: test_3: dataroot_lq: folder datasets/Urban100/LRbicx4 does not exist\n'
        '  datasets: test_4: dataroot_gt: folder datasets/BSDS100/GTmod4 does not exist\n'
        '  datasets: test_4: dataroot_lq: folder datasets/BSDS100/LRbicx4 does not exist\n'
        '  datasets: test_5: dataroot_gt: folder datasets/Manga109/GTmod4 does not exist\n'
        '  datasets: test_5: dataroot_lq: folder datasets/Manga109/LRbicx4 does not exist\n'
        '  path: pretrain_network_g: experiments/pretrained_models/HAT-S_SRx4.pth does not exist\n')
    assert not (tmp_path / 'results').exists()  # nothing made before the problems were reported


def test_a_training_recipe_reports_its_bad_keys_values_and_paths_together(tmp_path, monkeypatch, capsys):
    opt = tiny_options('everything')
    opt['logger']['print_frq'] = opt['logger'].pop('print_freq')  # a misspelt required key
    opt['tile'] = {'tile_sise': 64}  # an unknown key of a section
    opt['train']['pixel_opt']['loss_weight'] = '1e0'  # a number YAML reads as text
    opt['train']['optim_g']['betas'] = [0.9]  # a setting torch refuses
    opt['val']['metrics']['psnr']['crop_borderr'] = 4  # a misspelt argument of a metric
    opt['network_g'] = dict(opt['network_g'], upsampler='pixelshufle')  # a value HAT refuses
    opt['datasets']['val']['dataroot_lq'] = str(tmp_path / 'no_lr')  # a missing folder
    opt['path']['pretrain_network_g'] = str(tmp_path / 'net_g.pth')  # a missing checkpoint
    write_options(tmp_path, opt)
    monkeypatch.chdir(tmp_path)
    assert train_main(['-opt', 'tiny.yml']) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == 'basicsr train: error: option file tiny.yml has 8 problems:'
    assert lines[1:4] == [
        '  missing required key logger: print_freq',
        "  unknown key tile: tile_sise (expected tile_size, tile_pad)",
        "  val: metrics: psnr: calculate_psnr has no argument 'crop_borderr' (did you mean 'crop_border'?)",
    ]
    assert lines[4].startswith("  train: pixel_opt: loss_weight is the text '1e0', not a number")
    assert lines[5].startswith("  network_g: upsampler 'pixelshufle' is not one of ")
    assert lines[6].startswith('  train: optim_g: the Adam optimizer refuses these settings: ')
    assert lines[7:] == [f"  datasets: val: dataroot_lq: folder {tmp_path / 'no_lr'} does not exist",
                         f"  path: pretrain_network_g: {tmp_path / 'net_g.pth'} does not exist"]
    assert not (tmp_path / 'experiments').exists()
