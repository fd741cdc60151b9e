"""``basicsr train|test`` and ``python -m hat_arch.train|test``: BasicSR's flags, the current folder as root, and
one-line errors for bad option files."""
from __future__ import annotations

import re
import runpy
import sys

import pytest
import torch
import yaml

from hat_arch.cli import basicsr_main
from hat_arch.errors import HatError, report_user_errors
from hat_arch.training.options import build_parser
from tests.training.tiny import one_thread, read_log, tiny_options, write_options


@pytest.mark.slow  # trains
def test_train_then_test_in_a_fresh_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options('tiny', total_iter=5, save_every=2, validate_every=2))
    with one_thread():  # the option file says 5 iterations; --force_yml makes it 2
        assert basicsr_main(['train', '-opt', 'tiny.yml', '--force_yml', 'train:total_iter=2']) == 0
    experiment = tmp_path / 'experiments' / 'tiny'
    log = read_log(experiment)
    assert re.search(r'iter:\s+2, lr', log) and not re.search(r'iter:\s+3, lr', log)
    assert re.search(r'Validation Set5\s+# psnr: \d+\.\d{4}', log)
    assert 'World size: 1 process(es)' in log and 'Batch size per process: 2 (total 2)' in log
    latest = torch.load(experiment / 'models' / 'net_g_latest.pth', weights_only=True)
    assert set(latest) == {'params', 'params_ema'}

    opt = tiny_options()
    test_opt = {'name': 'tiny_test', 'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0,
                'network_g': opt['network_g'], 'datasets': {'test_1': opt['datasets']['val']}, 'val': opt['val'],
                'path': {'pretrain_network_g': 'experiments/tiny/models/net_g_latest.pth', 'param_key_g': 'params_ema'}}
    write_options(tmp_path, test_opt, 'test.yml')
    with one_thread():
        assert basicsr_main(['test', '-opt', 'test.yml']) == 0
    test_log = next((tmp_path / 'results' / 'tiny_test').glob('test_tiny_test_*.log')).read_text()
    assert re.findall(r'# psnr: (\d+\.\d+)', test_log)[0] == re.findall(r'# psnr: (\d+\.\d+)', log)[-1]


@pytest.mark.parametrize('flags', [['--local-rank', '3'], ['--local_rank=3'], ['--local-rank=3']])
def test_both_local_rank_spellings(flags):
    args = build_parser('basicsr train', True).parse_args(['-opt', 'x.yml', '--launcher', 'pytorch', *flags])
    assert args.local_rank == 3 and args.launcher == 'pytorch'


def test_basicsr_flags():
    args = build_parser('basicsr train', True).parse_args(
        ['-opt', 'x.yml', '--auto_resume', '--debug', '--force_yml', 'train:ema_decay=0.9', 'name=y'])
    assert args.auto_resume and args.debug and args.force_yml == ['train:ema_decay=0.9', 'name=y']
    with pytest.raises(SystemExit):
        build_parser('basicsr train', True).parse_args(['-opt', 'x.yml', '--launcher', 'mpi'])


def bad_option_cases():
    good = tiny_options()
    cases = {
        'missing': (None, [], r"option file .*nothere\.yml does not exist"),
        'typo': ({**good, 'trian': {}}, [], r"unknown top-level key 'trian' \(did you mean 'train'\?\)"),
        'yaml': ('name: [unclosed', [], r'tiny\.yml is not readable YAML: '),
        'scalar': ('just text', [], r'tiny\.yml holds no options'),
        'required': ({k: v for k, v in good.items() if k != 'num_gpu'}, [], r'missing required key\(s\) num_gpu'),
        'nested': ({**good, 'logger': {'print_freq': 1}}, [], r'missing required key logger: save_checkpoint_freq'),
        'phase': ({**good, 'datasets': {**good['datasets'], 'tset': good['datasets']['val']}}, [],
                  r"datasets: unknown phase 'tset'"),
        'force_yml': (good, ['--force_yml', 'trainn:ema_decay=0.9'], r'--force_yml trainn:ema_decay=0\.9: .*no trainn'),
        'force_syntax': (good, ['--force_yml', 'train:ema_decay'], r'expected KEY=VALUE'),
        'dist_params': ({**good, 'dist_params': {'backend': 'gloo', 'prot': 1}}, [], r'unknown key dist_params: prot'),
        'mapping': ({**good, 'path': None}, [], r'path must be a mapping of options, got None'),
        'scale': ({k: v for k, v in good.items() if k != 'scale'}, [], r'missing required key\(s\) scale'),
        'metric': ({**good, 'val': {**good['val'], 'metrics': {'psnr': {'type': 'calculate_PSNR'}}}}, [],
                   r"val: metrics: psnr: type 'calculate_PSNR' is not registered in BasicSR or hat_arch \(did you "
                   r"mean 'calculate_psnr'\?\)"),
        'metric_argument': ({**good, 'val': {**good['val'], 'metrics': {'psnr': {
            'type': 'calculate_psnr', 'crop_borde': 4, 'test_y_channel': True}}}}, [],
            r"val: metrics: psnr: calculate_psnr has no argument 'crop_borde' \(did you mean 'crop_border'\?\)$"),
        'metric_missing': ({**good, 'val': {**good['val'], 'metrics': {'psnr': {'type': 'calculate_ssim'}}}}, [],
                           r"val: metrics: psnr: calculate_ssim missing a required argument: 'crop_border'$"),
        'metric_value': ({**good, 'val': {**good['val'], 'metrics': {'psnr': {
            'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': 'yes'}}}}, [],
            r"val: metrics: psnr: test_y_channel must be true or false, got 'yes'$"),
        'metric_better': ({**good, 'val': {**good['val'], 'metrics': {'psnr': {
            'type': 'calculate_psnr', 'crop_border': 4, 'better': 'more'}}}}, [],
            r"val: metrics: psnr: better must be higher or lower, got 'more'$"),
        'save_img': ({**good, 'val': {**good['val'], 'save_img': 'yes'}}, [],
                     r"val: save_img must be true or false, got 'yes'$"),
        'count': ({**good, 'train': {**good['train'], 'total_iter': 2.5}}, [],
                  r"train: total_iter must be a positive whole number \(e.g. 100000\), got 2.5"),
        'count_as_text': ({**good, 'train': {**good['train'], 'total_iter': '1e5'}}, [],
                          r"train: total_iter is the text '1e5', not a number .*: write !!float 1e5$"),
        'lr': ({**good, 'train': {**good['train'], 'optim_g': {**good['train']['optim_g'], 'lr': '1e-3'}}}, [],
               r"train: optim_g: lr is the text '1e-3', not a number .*: write !!float 1e-3$"),
        'milestone': ({**good, 'train': {**good['train'], 'scheduler': {'type': 'MultiStepLR', 'milestones': ['2E5'],
                                                                        'gamma': 0.5}}}, [],
                      r"train: scheduler: milestones\[0\] is the text '2E5'"),
        'force_lr': (good, ['--force_yml', 'train:optim_g:lr=2e-4'],
                     r"tiny\.yml with --force_yml: train: optim_g: lr is the text '2e-4'"),
        'hat_value': ({**good, 'network_g': {**good['network_g'], 'upsampler': 'pixelshufle'}}, [],
                      r"network_g: upsampler 'pixelshufle' is not one of \("),
        'hat_argument': ({**good, 'network_g': {**good['network_g'], 'upsamplr': 'pixelshuffle'}}, [],
                         r"network_g: HAT has no argument 'upsamplr' \(did you mean 'upsampler'\?\)$"),
        'optimizer': ({**good, 'train': {**good['train'], 'optim_g': {'type': 'Adamm', 'lr': 1e-3}}}, [],
                      r"train: optim_g: type 'Adamm' is not an optimizer that HATModel builds"),
        'betas': ({**good, 'train': {**good['train'], 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': 0.9}}}, [],
                  r"train: optim_g: the Adam optimizer refuses these settings: 'float' object is not subscriptable"),
        'scheduler': ({**good, 'train': {**good['train'], 'scheduler': {'type': 'MultiStepLRR', 'milestones': [3]}}},
                      [], r'train: scheduler: Scheduler MultiStepLRR is not implemented yet'),
        'cosine': ({**good, 'train': {**good['train'], 'scheduler': {'type': 'CosineAnnealingRestartLR',
                                                                     'periods': [2, 2], 'restart_weights': [1]}}},
                   [], r'train: scheduler: the CosineAnnealingRestartLR scheduler refuses these settings: periods '
                   r'and restart_weights should have the same length'),
        'no_scheduler': ({**good, 'train': {k: v for k, v in good['train'].items() if k != 'scheduler'}}, [],
                         r'train: scheduler must be a mapping with a type \(e.g. MultiStepLR\), got None'),
        'scheduler_text': ({**good, 'train': {**good['train'], 'scheduler': 'MultiStepLR'}}, [],
                           r"train: scheduler must be a mapping with a type \(e.g. MultiStepLR\), got 'MultiStepLR'"),
        'frequency': ({**good, 'logger': {**good['logger'], 'print_freq': 0}}, [],
                      r'logger: print_freq must be a positive whole number'),
        'model_type': ({**good, 'model_type': 'HATModle'}, [], r"model_type 'HATModle' is not registered .*'HATModel'"),
        'network': ({**good, 'network_g': {**good['network_g'], 'type': 'Hat'}}, [],
                    r"network_g: type 'Hat' is not registered"),
        'loss': ({**good, 'train': {**good['train'], 'pixel_opt': {'type': 'L1loss'}}}, [],
                 r"train: pixel_opt: type 'L1loss' is not registered .*'L1Loss'"),
        'dataset': ({**good, 'datasets': {**good['datasets'], 'val': {**good['datasets']['val'], 'type': 'Paired'}}},
                    [], r"datasets: val: type 'Paired' is not registered"),
        'tile': ({**good, 'tile': 256}, [], r'tile must be a mapping of options, got 256'),
        'tile_key': ({**good, 'tile': {'size': 64}}, [], r'unknown key tile: size \(expected tile_size, tile_pad\)'),
        'tile_pad': ({**good, 'tile': {'tile_size': 64, 'tile_pad': -1}}, [],
                     r'tile: tile_pad must be a non-negative integer \(or null\), got -1'),
        'tile_window': ({**good, 'tile': {'tile_size': 2}}, [],
                        r"tile: tile_size: tile 2 is smaller than the network's window of \d+ pixels"),
    }
    cases['prefetch'] = ({**good, 'datasets': {**good['datasets'], 'train': {**good['datasets']['train'],
                                                                             'prefetch_mode': 'gpu'}}}, [],
                         r"datasets: train: prefetch_mode 'gpu': expected cpu or cuda \(or none\)")
    if not torch.cuda.is_available():
        cases['gpu'] = ({**good, 'num_gpu': 1}, [], r'num_gpu is 1 but no GPU is visible')
        cases['prefetch_cuda'] = (
            {**good, 'datasets': {**good['datasets'], 'train': {**good['datasets']['train'], 'prefetch_mode': 'cuda',
                                                                'pin_memory': True}}}, [],
            r'datasets: train: prefetch_mode cuda needs a GPU and none is visible \(use cpu, or none\)')
    return cases


@pytest.mark.parametrize('case', list(bad_option_cases()))
def test_bad_option_files_are_one_line_errors(case, tmp_path, monkeypatch, capsys):
    content, flags, message = bad_option_cases()[case]
    monkeypatch.chdir(tmp_path)
    name = 'nothere.yml' if content is None else 'tiny.yml'
    if content is not None:
        (tmp_path / name).write_text(content if isinstance(content, str) else yaml.safe_dump(content))
    assert basicsr_main(['train', '-opt', name, *flags]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith('basicsr train: error: ') and re.search(message, err), err
    assert not (tmp_path / 'experiments').exists()


def test_test_needs_a_val_section(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    opt = tiny_options()
    write_options(tmp_path, {k: opt[k] for k in ('name', 'model_type', 'scale', 'num_gpu', 'datasets', 'path',
                                                 'network_g')})
    assert basicsr_main(['test', '-opt', 'tiny.yml']) == 2
    assert re.fullmatch(r'basicsr test: error: option file tiny\.yml: missing required key\(s\) val\n',
                        capsys.readouterr().err)


@pytest.mark.parametrize('launcher, environment, message', [
    ('none', {'WORLD_SIZE': '2'}, r'one of 2 processes .* add --launcher pytorch'),
    ('pytorch', {}, r'--launcher pytorch needs the environment torchrun sets'),
])
def test_launcher_mismatch_is_a_one_line_error(tmp_path, monkeypatch, capsys, launcher, environment, message):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    write_options(tmp_path, tiny_options())
    assert basicsr_main(['train', '-opt', 'tiny.yml', '--launcher', launcher]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err


def test_unwritable_root_is_reported(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'experiments').write_text('not a folder')
    write_options(tmp_path, tiny_options())
    assert basicsr_main(['train', '-opt', 'tiny.yml']) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r'basicsr train: error: cannot create the experiment folder .*experiments/tiny: '
                        r'.*Not a directory.*\n', err)


@pytest.mark.parametrize('module', ['hat_arch.train', 'hat_arch.test'])
def test_python_m_entry_points(module, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [module, '--help'])
    monkeypatch.delitem(sys.modules, module, raising=False)  # as under `python -m`: not imported before
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module(module, run_name='__main__')
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ('-opt', '--launcher', '--auto_resume', '--debug', '--local_rank', '--local-rank', '--force_yml'):
        assert flag in help_text


class UnreadableImages(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, index):
        raise HatError(f'cannot read /data/lq/{index:04d}.png: not an image OpenCV can decode')


@pytest.mark.slow  # spawns processes
def test_an_error_raised_in_a_dataloader_worker_is_still_one_line(capsys):
    def load():
        next(iter(torch.utils.data.DataLoader(UnreadableImages(), num_workers=1)))

    assert report_user_errors(load, 'basicsr train') == 2
    assert capsys.readouterr().err == ('basicsr train: error: cannot read /data/lq/0000.png: not an image OpenCV '
                                       'can decode\n')


def alias_bomb(levels: int = 9) -> str:
    """YAML whose 9 levels of '&aN [*aM x 9]' load as a small shared graph but expand to 9**10 values."""
    lines = ['  a0: &a0 [x, x, x, x, x, x, x, x, x]']
    lines += [f'  a{i}: &a{i} [{", ".join([f"*a{i - 1}"] * 9)}]' for i in range(1, levels + 1)]
    return '\n'.join(lines) + '\n'


@pytest.mark.parametrize('case', ['bomb', 'recursive'])
def test_aliases_that_expand_without_bound_are_refused_in_one_line(case, tmp_path, monkeypatch, capsys):
    # The bomb hung `basicsr test` (no output for 300 s): each check walks the expanded options.
    monkeypatch.chdir(tmp_path)
    opt = tiny_options()
    test_opt = {'name': 'tiny_test', 'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0,
                'network_g': opt['network_g'], 'datasets': {'test_1': opt['datasets']['val']}, 'path': {}}
    val = yaml.safe_dump({'val': opt['val']}) + (alias_bomb() if case == 'bomb' else '  loop: &loop [1, *loop]\n')
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(test_opt) + val)
    assert basicsr_main(['test', '-opt', 'test.yml']) == 2
    message = {'bomb': r'its aliases \(\*name\) expand to more than 100000 values \(from line \d+\); write the '
                       r'options out instead',
               'recursive': r'an alias refers to the value that holds it \(line \d+\); options cannot be recursive'}
    assert re.fullmatch(rf'basicsr test: error: option file test\.yml: {message[case]}\n', capsys.readouterr().err)
