"""The benchmark's own arithmetic: FLOPs counted as the issue states them, time attributed to the right kinds."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hat_arch import HATConfig


def test_hat_x4_flops_at_64_are_the_published_208_gflop(bench):
    flops = bench.count_flops('HAT_SRx4', 64, 1, train=False)
    assert flops['total'] / 1e9 == pytest.approx(207.8, abs=0.1)
    # Inference FLOPs are all linear layers, attention matmuls or convs.
    assert flops['linear'] + flops['attention'] + flops['conv'] == pytest.approx(flops['total'])
    assert flops['attention'] / 1e9 == pytest.approx(37.4, abs=0.1)


def test_training_flops_include_the_backward(bench):
    forward = bench.count_flops('HAT-T_SRx4_T91', 16, 2, train=False)['total']
    step = bench.count_flops('HAT-T_SRx4_T91', 16, 2, train=True)['total']
    assert 2.5 * forward < step < 3.5 * forward


@pytest.mark.parametrize('impl', ['naive', 'sdpa'])
def test_time_by_kind_finds_each_kind_of_operator(bench, impl):
    seconds = bench.time_by_kind(bench.Case('HAT-T_SRx4_T91', 16, 1, impl, train=False))
    assert set(seconds) == {'linear', 'attention', 'conv', 'other'}
    assert all(seconds[kind] > 0 for kind in ('linear', 'attention', 'conv'))


class FakeCase:
    """A case that records its runs; its first run keeps 256 MiB, as Adam's state or a compiled graph stays."""

    def __init__(self, model, size, batch, impl, train, device='cpu'):
        self.impl, self.size, self.compiled, self.kept = impl, size, impl.endswith('compile'), None

    def run(self):
        if self.kept is None:
            self.kept = bytearray(256 * 2**20)
            self.kept[::4096] = b'\1' * len(self.kept[::4096])  # touch every page


def test_compiled_cases_are_warmed_up_at_every_size(bench, monkeypatch, capsys):
    # torch.compile compiles again for each size: without a warm-up, minutes of compiling would be timed.
    warmed = []

    def benchmark(cases, repeats, matmul, warm_up, device):
        warmed.append([(case.impl, case.size) for case in warm_up])
        matmul.append(1.0)
        return {case.impl: 1.0 for case in cases}

    monkeypatch.setattr(bench, 'Case', FakeCase)
    monkeypatch.setattr(bench, 'benchmark', benchmark)
    monkeypatch.setattr(bench, 'count_flops', lambda *args: {'total': 1e9})
    assert bench.main(['--mode', 'infer', '--sizes', '16', '24', '--compile', '--no-memory']) == 0
    assert warmed == [[('sdpa', 16), ('sdpa+compile', 16)], [('sdpa+compile', 24)]]


@pytest.mark.skipif(not Path('/proc/self/clear_refs').exists(), reason='Linux only')
def test_peak_memory_leaves_out_what_the_first_run_keeps(bench, monkeypatch):
    monkeypatch.setattr(bench, 'Case', FakeCase)
    peak = bench.measure_peak(dict(model='HAT-S_SRx4', size=16, batch=1, impl='sdpa', train=True, threads=1))
    assert peak < 64 * 2**20


@pytest.mark.parametrize('train', [False, True])
def test_amp_cases_run_the_fused_path_under_autocast(bench, train, monkeypatch):
    tiny = HATConfig(upscale=4, window_size=8, embed_dim=16, depths=[1], num_heads=[2], compress_ratio=4,
                     squeeze_factor=4)
    monkeypatch.setitem(bench.CONFIGS, 'tiny', tiny)
    dtypes = {}
    for impl in ('sdpa+bf16', 'naive'):
        case = bench.Case('tiny', 16, 1, impl, train=train)
        case.net.conv_first.register_forward_hook(lambda module, inputs, out: dtypes.update({impl: out.dtype}))
        before = [p.detach().clone() for p in case.net.parameters()]
        case.run()
        assert case.net.attn_impl == impl.split('+')[0]
        assert any(not torch.equal(b, p) for b, p in zip(before, case.net.parameters())) == train  # a step was taken
    assert dtypes == {'sdpa+bf16': torch.bfloat16, 'naive': torch.float32}


def test_amp_rows_for_every_model(bench, monkeypatch, capsys):
    monkeypatch.setattr(bench, 'Case', FakeCase)

    def benchmark(cases, repeats, matmul, *args):
        matmul.append(1.0)
        return {case.impl: 2.0 for case in cases}

    monkeypatch.setattr(bench, 'benchmark', benchmark)
    monkeypatch.setattr(bench, 'count_flops', lambda *args: {'total': 1e9})
    assert bench.main(['--mode', 'infer', '--model', 'HAT_SRx4', 'HAT-L_SRx4', '--sizes', '16', '--amp', 'bf16',
                       '--compare', 'naive', '--no-memory', '--batch', '3']) == 0
    rows = [line.split(' | ')[:5] for line in capsys.readouterr().out.splitlines() if line.startswith('| HAT')]
    assert rows == [[f'| {model}', '3x16x16', impl, '2.00', '1.50'] for model in ('HAT_SRx4', 'HAT-L_SRx4')
                    for impl in ('naive', 'sdpa', 'sdpa+bf16')]


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a machine without a GPU')
def test_cuda_without_a_gpu_is_refused(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(['--device', 'cuda'])
    assert '--device cuda: no GPU is visible' in capsys.readouterr().err
