"""The benchmark's own arithmetic: FLOPs counted as the issue states them, time attributed to the right kinds."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / 'benchmarks' / 'bench_hat.py'


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('bench_hat', BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hat_x4_flops_at_64_are_the_published_208_gflop(bench):
    flops = bench.count_flops('HAT_SRx4', 64, 1, train=False)
    assert flops['total'] / 1e9 == pytest.approx(207.8, abs=0.1)
    # Inference FLOPs are all linear layers, attention matmuls or convs.
    assert flops['linear'] + flops['attention'] + flops['conv'] == pytest.approx(flops['total'])
    assert flops['attention'] / 1e9 == pytest.approx(37.4, abs=0.1)


def test_training_flops_include_the_backward(bench):
    forward = bench.count_flops('HAT-S_SRx4', 16, 2, train=False)['total']
    step = bench.count_flops('HAT-S_SRx4', 16, 2, train=True)['total']
    assert 2.5 * forward < step < 3.5 * forward


@pytest.mark.parametrize('impl', ['naive', 'sdpa'])
def test_time_by_kind_finds_each_kind_of_operator(bench, impl):
    seconds = bench.time_by_kind(bench.Case('HAT-S_SRx4', 16, 1, impl, train=False))
    assert set(seconds) == {'linear', 'attention', 'conv', 'other'}
    assert all(seconds[kind] > 0 for kind in ('linear', 'attention', 'conv'))


class FakeCase:
    """A case that records its runs; its first run keeps 256 MiB, as Adam's state or a compiled graph stays."""

    def __init__(self, model, size, batch, impl, train):
        self.impl, self.size, self.compiled, self.kept = impl, size, impl.endswith('compile'), None

    def run(self):
        if self.kept is None:
            self.kept = bytearray(256 * 2**20)
            self.kept[::4096] = b'\1' * len(self.kept[::4096])  # touch every page


def test_compiled_cases_are_warmed_up_at_every_size(bench, monkeypatch, capsys):
    # torch.compile compiles again for each size: without a warm-up, minutes of compiling would be timed.
    warmed = []

    def benchmark(cases, repeats, matmul, warm_up):
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
