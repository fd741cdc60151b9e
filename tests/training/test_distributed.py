"""torch.distributed on the CPU: a 2-process gloo run under torchrun, the SLURM environment, launcher errors."""
from __future__ import annotations

import re
import socket
import subprocess

import pytest
import torch
import torch.distributed as dist

from hat_arch.errors import HatError
from hat_arch import test as test_command
from hat_arch.training.distributed import all_gather_objects, any_process, init_dist, sum_over_processes
from tests.training.tiny import console_script, one_thread, read_log, subprocess_env, tiny_options, write_options


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.mark.slow  # trains
def test_torchrun_two_processes_train_validate_and_checkpoint_once(tmp_path, monkeypatch):
    yml = write_options(tmp_path, tiny_options('ddp', total_iter=4, save_every=2, validate_every=4))
    command = [console_script('torchrun'), '--standalone', '--nproc_per_node=2', '--no-python',
               console_script('basicsr'), 'train', '-opt', str(yml), '--launcher', 'pytorch']
    run = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, '\n'.join(line for line in run.stderr.splitlines() if 'error' in line.lower())[-3000:]
    experiment = tmp_path / 'experiments' / 'ddp'
    log = read_log(experiment)
    assert 'World size: 2 process(es)' in log and 'Batch size per process: 2 (total 4)' in log
    assert len(re.findall(r'iter:\s+\d+,', log)) == 4  # rank 0 logs each iteration once
    assert log.count('Saving models and training states.') == 2
    assert sorted(p.name for p in (experiment / 'models').iterdir()) == ['net_g_2.pth', 'net_g_4.pth',
                                                                         'net_g_latest.pth']
    for path in [*experiment.rglob('*.pth'), *experiment.rglob('*.state')]:
        torch.load(path, map_location='cpu', weights_only=True)
    state = torch.load(experiment / 'training_states' / '4.state', weights_only=True)
    assert len(state['rng']) == 2 and not torch.equal(state['rng'][0]['torch'], state['rng'][1]['torch'])

    # The validation spread over both processes gives the PSNR of one process validating all of Set5.
    distributed_psnr = float(re.findall(r'# psnr: ([\d.]+)', log)[-1])
    opt = tiny_options('single')
    test_opt = {'name': 'single', 'model_type': 'HATModel', 'scale': 4, 'num_gpu': 0, 'network_g': opt['network_g'],
                'datasets': {'test_1': opt['datasets']['val']}, 'val': opt['val'],
                'path': {'pretrain_network_g': str(experiment / 'models' / 'net_g_4.pth'), 'param_key_g': 'params_ema'}}
    monkeypatch.chdir(tmp_path)
    with one_thread():
        assert test_command.main(['-opt', str(write_options(tmp_path, test_opt, 'test.yml'))]) == 0
    single_log = next((tmp_path / 'results' / 'single').glob('test_*.log')).read_text()
    assert float(re.findall(r'# psnr: ([\d.]+)', single_log)[-1]) == pytest.approx(distributed_psnr, abs=1e-4)


def test_slurm_environment_joins_a_gloo_group(monkeypatch):
    for name, value in {'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'SLURM_NODELIST': 'localhost',
                        'SLURM_LOCALID': '0', 'MASTER_ADDR': '127.0.0.1'}.items():
        monkeypatch.setenv(name, value)
    for name in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    init_dist('slurm', port=free_port())
    try:
        assert dist.get_backend() == 'gloo' and dist.get_world_size() == 1
        assert all_gather_objects({'a': 1}) == [{'a': 1}]
        assert any_process(True) and not any_process(False)
        assert sum_over_processes([1.5, 2.0]) == [1.5, 2.0]
    finally:
        dist.destroy_process_group()


def test_launchers_without_their_environment_are_one_line_errors(monkeypatch):
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT', 'SLURM_PROCID'):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(HatError, match='torchrun --nproc_per_node'):
        init_dist('pytorch')
    with pytest.raises(HatError, match='srun'):
        init_dist('slurm')
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '1')
    monkeypatch.setenv('MASTER_ADDR', '127.0.0.1')
    monkeypatch.setenv('MASTER_PORT', str(free_port()))
    if not torch.cuda.is_available():
        with pytest.raises(HatError, match='nccl'):
            init_dist('pytorch', backend='nccl')
