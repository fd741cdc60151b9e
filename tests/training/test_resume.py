"""The pieces of exact resumption: the newest complete state, random states, the sampler's position in an epoch."""
from __future__ import annotations

import logging
import random
import re

import numpy as np
import pytest
import torch
from basicsr.data.data_sampler import EnlargedSampler

from hat_arch import HAT
from hat_arch.errors import HatError
from hat_arch.train import main as train_main
from hat_arch.training.resume import find_complete_state, load_resume_state, restore_training_state
from hat_arch.training.rng import get_rng_state, preserved_rng, set_rng_state
from hat_arch.training.sampler import ResumableSampler
from tests.training.tiny import NETWORK, one_thread, read_log, tiny_options, write_options


def draws() -> tuple:
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist(), np.random.randn()


def test_rng_state_round_trip_through_a_weights_only_file(tmp_path):
    np.random.randn()  # leaves a cached gaussian in numpy's state
    torch.save(get_rng_state(), tmp_path / 'rng.state')
    expected = draws()
    set_rng_state(torch.load(tmp_path / 'rng.state', weights_only=True))
    assert draws() == expected
    with preserved_rng():
        draws()
    after = get_rng_state()
    assert draws() != expected
    set_rng_state(after)


def test_sampler_starts_part_way_through_an_epoch():
    dataset = list(range(7))
    reference, sampler = EnlargedSampler(dataset, 2, 1, ratio=3), ResumableSampler(dataset, 2, 1, ratio=3)
    for epoch in (0, 5):
        reference.set_epoch(epoch)
        sampler.set_epoch(epoch)
        full = list(reference)
        assert list(sampler) == full and len(full) == 11
        sampler.set_epoch(epoch, start=4)
        assert list(sampler) == full[4:] and len(sampler) == 7
    sampler.set_epoch(1, start=99)
    assert list(sampler) == [] and len(sampler) == 0


def experiment(tmp_path) -> dict:
    opt = {'name': 'x', 'network_g': {}, 'auto_resume': True,
           'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'training_states')}}
    (tmp_path / 'models').mkdir()
    (tmp_path / 'training_states').mkdir()
    return opt


def save_checkpoint(tmp_path, current_iter: int, network: bool = True) -> None:
    state = {'epoch': 0, 'iter': current_iter, 'optimizers': [], 'schedulers': []}
    torch.save(state, tmp_path / 'training_states' / f'{current_iter}.state')
    if network:
        torch.save({'params': {'w': torch.ones(1)}}, tmp_path / 'models' / f'net_g_{current_iter}.pth')


def test_newest_complete_state_skips_torn_and_orphaned_ones(tmp_path):
    opt = experiment(tmp_path)
    assert find_complete_state(opt) == (None, None, [])
    save_checkpoint(tmp_path, 10)
    save_checkpoint(tmp_path, 20, network=False)  # its network file is missing
    save_checkpoint(tmp_path, 30)
    (tmp_path / 'training_states' / '30.state').write_bytes(b'PK\x03\x04')  # torn by an in-place writer
    save_checkpoint(tmp_path, 40)
    (tmp_path / 'models' / 'net_g_40.pth').write_bytes((tmp_path / 'models' / 'net_g_40.pth').read_bytes()[:100])
    (tmp_path / 'training_states' / 'notes.state').write_text('not a checkpoint name')
    path, state, skipped = find_complete_state(opt)
    assert path.endswith('/10.state') and state['iter'] == 10
    assert [note.split(': ')[0].rsplit('/', 1)[1] for note in skipped] == ['40.state', '30.state', '20.state']
    assert skipped[0].endswith('net_g_40.pth: damaged or truncated (PytorchStreamReader failed reading zip archive: '
                               'failed finding central directory)')  # not PyTorch's paragraph

    state = load_resume_state(opt)
    assert state['iter'] == 10 and opt['path']['resume_state'].endswith('10.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_10.pth')  # set by BasicSR's check_resume
    assert len(state['skipped_states']) == 3


def test_explicit_resume_state_that_is_not_one(tmp_path):
    opt = experiment(tmp_path)
    opt.update(auto_resume=False)
    opt['path']['resume_state'] = str(tmp_path / 'missing.state')
    with pytest.raises(HatError, match=r'cannot read training state .*missing\.state: No such file'):
        load_resume_state(opt)
    torch.save({'params': {}}, tmp_path / 'net.pth')
    opt['path']['resume_state'] = str(tmp_path / 'net.pth')
    with pytest.raises(HatError, match=r'net\.pth is not a BasicSR training state'):
        load_resume_state(opt)


@pytest.mark.slow  # trains
def test_a_resumed_run_does_not_need_its_pretrained_file(tmp_path, monkeypatch):
    # A fine-tuning recipe starts from another run's network; once it has its own checkpoints, resuming loads those,
    # so the pretrained file may be gone (another machine, cleaned up).
    monkeypatch.chdir(tmp_path)
    pretrained = tmp_path / 'x2_stage.pth'
    torch.save({'params': HAT(**{k: v for k, v in NETWORK.items() if k != 'type'}).state_dict()}, pretrained)
    opt = tiny_options('finetune', total_iter=2, save_every=2, validate_every=None)
    opt['path']['pretrain_network_g'] = str(pretrained)
    with one_thread():
        assert train_main(['-opt', str(write_options(tmp_path, opt))]) == 0
        pretrained.unlink()
        opt['train']['total_iter'] = 3
        assert train_main(['-opt', str(write_options(tmp_path, opt)), '--auto_resume']) == 0
    assert 'Resuming training from epoch: 0, iter: 2.' in read_log(tmp_path / 'experiments' / 'finetune')
    with one_thread():  # resumed from the copy of the options that the run keeps (it once failed: 'same file')
        assert train_main(['-opt', str(tmp_path / 'experiments' / 'finetune' / 'tiny.yml'), '--auto_resume']) == 0


def test_a_gradient_scaler_that_was_off_starts_fresh_when_resumed_with_fp16(caplog):
    # A run saved without fp16 holds an empty scaler state; an enabled scaler refuses to load one.
    class Model:
        def __init__(self):
            self.grad_scaler = torch.amp.GradScaler('cpu', init_scale=1024.0)

        def resume_training(self, state):
            pass

    model = Model()
    state = {'epoch': 0, 'iter': 2, 'grad_scalers': {'grad_scaler': {}}, 'rng': None}
    with caplog.at_level(logging.WARNING):
        restore_training_state(model, state, {'world_size': 1}, logging.getLogger('test'))
    assert model.grad_scaler.get_scale() == 1024.0
    assert 'Gradient scaler grad_scaler was off in the saved run' in caplog.text


@pytest.mark.slow  # trains
def test_a_changed_schedule_is_refused_when_resuming(tmp_path, monkeypatch, capsys):
    # The saved schedulers replace those of the option file: new milestones would be ignored without a word, and new
    # cosine periods crash BasicSR's scheduler. Nothing of the run is touched.
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('schedule', total_iter=2, save_every=2, validate_every=None)
    with one_thread():
        assert train_main(['-opt', str(write_options(tmp_path, opt))]) == 0
        opt['train'].update(total_iter=4, scheduler={'type': 'MultiStepLR', 'milestones': [3, 5], 'gamma': 0.5})
        assert train_main(['-opt', str(write_options(tmp_path, opt)), '--auto_resume']) == 2
    error = capsys.readouterr().err
    assert 'train: scheduler: milestones is [3, 5] in the option file but [3] in the saved run' in error
    assert sorted(p.name for p in (tmp_path / 'experiments' / 'schedule' / 'training_states').iterdir()) == ['2.state']


@pytest.mark.slow  # trains
def test_the_best_validation_record_survives_a_resume(tmp_path, monkeypatch):
    # BasicSR keeps the best metric per validation set only in memory: a resumed run's log said 'Best: ... @' the
    # first iteration validated after the resume, whatever came before.
    monkeypatch.chdir(tmp_path)
    opt = tiny_options('best', total_iter=2, save_every=2, validate_every=2)
    with one_thread():
        assert train_main(['-opt', str(write_options(tmp_path, opt))]) == 0
    state_file = tmp_path / 'experiments' / 'best' / 'training_states' / '2.state'
    state = torch.load(state_file, weights_only=True)
    psnr = float(re.findall(r'# psnr: (\d+\.\d+)', read_log(tmp_path / 'experiments' / 'best'))[-1])
    assert state['best_metric_results']['Set5']['psnr'] == pytest.approx({'better': 'higher', 'val': psnr, 'iter': 2},
                                                                         abs=1e-4)
    state['best_metric_results']['Set5']['psnr'].update(val=99.0, iter=1)  # a record no new validation can beat
    torch.save(state, state_file)
    opt['train']['total_iter'] = 4
    with one_thread():
        assert train_main(['-opt', str(write_options(tmp_path, opt)), '--auto_resume']) == 0
    assert re.search(r'# psnr: \d+\.\d+\s+Best: 99\.0000 @ 1 iter', read_log(tmp_path / 'experiments' / 'best'))
