"""training/validation.py: validation keeps the random states, runs on bare networks, and spreads over processes with
exact metric averages."""
from __future__ import annotations

import types

import pytest
import torch
from basicsr.models.sr_model import SRModel
from torch.nn.parallel import DistributedDataParallel

from hat_arch.training import validation
from hat_arch.training.validation import bare_networks, validate


class Images(torch.utils.data.Dataset):
    """Five 'images' whose PSNR is their index squared: 0, 1, 4, 9, 16 (mean 6)."""
    opt = {'name': 'Set5'}

    def __len__(self):
        return 5

    def __getitem__(self, index):
        return {'index': index}


class ShardModel(SRModel):
    """An SRModel (no network) whose nondist_validation leaves the mean PSNR of the images it is given."""

    def __init__(self):  # BaseModel's would build networks from the options
        self.opt = {'val': {'metrics': {'psnr': {'type': 'calculate_psnr'}}}}
        self.is_train = True
        self.logged = []

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        values = [float(batch['index'].item() ** 2) for batch in dataloader]
        self.metric_results = {'psnr': sum(values) / len(values)}
        self._initialize_best_metric_results(dataloader.dataset.opt['name'])
        self._update_best_metric_result(dataloader.dataset.opt['name'], 'psnr', self.metric_results['psnr'], 0)
        self._log_validation_metric_values(current_iter, dataloader.dataset.opt['name'], tb_logger)

    def _log_validation_metric_values(self, current_iter, dataset_name, tb_logger):
        self.logged.append((dataset_name, dict(self.metric_results)))


def two_processes(monkeypatch, rank: int, other_shard: list[float]) -> None:
    """This process is ``rank`` of 2; the other process's shard adds ``other_shard`` (its totals and count)."""
    monkeypatch.setattr(validation, 'is_distributed', lambda: True)
    monkeypatch.setattr(validation, 'get_dist_info', lambda: (rank, 2))
    monkeypatch.setattr(validation, 'sum_over_processes', lambda local: [a + b for a, b in zip(local, other_shard)])


def test_sharded_metrics_are_the_mean_over_all_images_not_over_shards(monkeypatch):
    two_processes(monkeypatch, rank=0, other_shard=[1.0 + 9.0, 2.0])  # rank 1 validates images 1 and 3
    model = ShardModel()
    validate(model, [torch.utils.data.DataLoader(Images())], 7, None, save_img=False)
    assert model.metric_results == {'psnr': pytest.approx(6.0)}  # (0 + 4 + 16 + 1 + 9) / 5, not (20/3 + 5) / 2
    assert model.best_metric_results['Set5']['psnr'] == {'better': 'higher', 'val': pytest.approx(6.0), 'iter': 7}
    assert model.logged == [('Set5', {'psnr': pytest.approx(6.0)})]  # the shard's own mean was not logged
    assert '_update_best_metric_result' not in vars(model) and '_log_validation_metric_values' not in vars(model)


def test_only_rank_0_logs_the_sharded_metrics(monkeypatch):
    two_processes(monkeypatch, rank=1, other_shard=[0.0 + 4.0 + 16.0, 3.0])
    model = ShardModel()
    validate(model, [torch.utils.data.DataLoader(Images())], 7, None, save_img=False)
    assert model.metric_results == {'psnr': pytest.approx(6.0)} and model.logged == []


def test_one_process_validates_with_the_models_own_validation_and_keeps_the_random_states():
    calls = []

    def validation_that_draws(loader, current_iter, tb_logger, save_img):
        calls.append((loader, current_iter, save_img))
        torch.rand(10)

    model = types.SimpleNamespace(is_train=True, validation=validation_that_draws)
    expected = torch.rand(3)
    torch.manual_seed(0)
    validate(model, ['loader 1', 'loader 2'], 5, None, save_img=True)
    assert calls == [('loader 1', 5, True), ('loader 2', 5, True)]
    assert torch.equal(torch.rand(3), expected)


def test_bare_networks_unwraps_ddp_within_the_block_only():
    network = torch.nn.Linear(2, 2)
    wrapped = DistributedDataParallel.__new__(DistributedDataParallel)  # no process group needed to hold a module
    torch.nn.Module.__init__(wrapped)
    wrapped.module = network
    model = types.SimpleNamespace(net_g=wrapped, net_d=network, opt={})
    with bare_networks(model):
        assert model.net_g is network and model.net_d is network
    assert model.net_g is wrapped and model.net_d is network
