"""Speed and memory of HAT: the fused attention path against the reference algorithm, side by side in one run.

Prints one table: model, input, implementation, median time, model GFLOP, GFLOP/s, % of the GFLOP/s of a large fp32
matmul measured in the same run, peak memory, and the ratios to the naive path.

    python benchmarks/bench_hat.py --compare naive                 # the issue's table (HAT x4 inference + HAT-S step)
    python benchmarks/bench_hat.py --sizes 64 --mode infer --compile  # adds torch.compile'd inference rows
    python benchmarks/bench_hat.py --sizes 64 --breakdown            # and where the time goes, by kind of op
    python benchmarks/bench_hat.py --compare naive --huge-pages    # both paths as the hat-sr/basicsr commands run them
    python benchmarks/bench_hat.py --device cuda --amp bf16 --compare naive --mode infer --sizes 256 \
        --model HAT_SRx4 HAT-L_SRx4                                # GPU: bf16 autocast against the naive fp32 path

How it measures:

* time: median over ``--repeats`` runs (5, and 2 or 1 for the big inputs), the implementations interleaved run by run
  in the same process with the same weights, after one warm-up run each at the first size (at every size for
  compiled cases);
* model FLOPs: counted once per case with ``torch.utils.flop_counter.FlopCounterMode`` on the naive path on the
  ``meta`` device (no compute), so every implementation is credited with the same work;
* matmul peak: a 2048 x 2048 fp32 matmul timed three times between the runs, the median of all its GFLOP/s;
* breakdown (``--breakdown``): one more run of each case under ``torch.profiler``, the self time of its operators
  summed by kind (linear layers, attention, convolutions, the rest) next to the FLOPs of that kind;
* peak memory on CUDA: what the second run allocates at its peak beyond what was allocated before it
  (``torch.cuda.max_memory_allocated``), in the benchmark's process;
* peak memory on CPU (Linux): each case runs twice in a fresh subprocess, with glibc's mmap threshold fixed so that
  freed large tensors go back to the OS at once. After the first run (compiling, Adam's state: one-time costs), the
  process's peak resident size is reset (``/proc/self/clear_refs``); peak = the peak resident size after the second run
  (``VmHWM``) minus the resident size before it: the memory the forward (or training step) adds at its peak.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from hat_arch.archs.config import HATConfig
from hat_arch.archs.hat_arch import HAT
from hat_arch.archs.named_models import NAMED_MODELS
from hat_arch.process_setup import use_huge_pages

# The named models (hat_arch.list_models()); each case adds its attention options.
CONFIGS: dict[str, HATConfig] = {name: entry.config for name, entry in NAMED_MODELS.items()}
# label: (HAT keyword arguments, compiled); '<label>+bf16' or '+fp16' runs it under autocast (--amp)
IMPLS = {
    'naive': (dict(attn_impl='naive'), False),
    'sdpa': (dict(attn_impl='sdpa'), False),
    'sdpa+checkpoint': (dict(attn_impl='sdpa', use_checkpoint=True), False),
    'sdpa+compile': (dict(attn_impl='sdpa'), True),
}
AMP_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
MATMUL_SIZE = 2048
# Kinds of work, by the operators that do it: the profiler's names and the FLOP counter's.
OP_KINDS = {
    'linear': (('aten::addmm', 'aten::mm'), ('aten.addmm', 'aten.mm')),
    'attention': (('aten::bmm', 'aten::baddbmm', 'aten::_softmax', 'aten::_softmax_backward_data',
                   'aten::_scaled_dot_product_flash_attention_for_cpu',
                   'aten::_scaled_dot_product_flash_attention_for_cpu_backward'), ('aten.bmm', 'aten.baddbmm')),
    'conv': (('aten::mkldnn_convolution', 'aten::convolution_backward', 'aten::_slow_conv2d_forward',
              'aten::_slow_conv2d_backward'), ('aten.convolution', 'aten.convolution_backward')),
}


def split_impl(impl: str) -> tuple[str, torch.dtype | None]:
    """'sdpa+bf16' -> ('sdpa', torch.bfloat16); 'sdpa' -> ('sdpa', None)."""
    base, _, amp = impl.rpartition('+')
    return (base, AMP_DTYPES[amp]) if amp in AMP_DTYPES else (impl, None)


def build(model: str, impl: str, device: str = 'cpu') -> torch.nn.Module:
    torch.manual_seed(0)  # the same weights in every process
    with torch.device(device):
        return HAT.from_config(CONFIGS[model].replace(**IMPLS[split_impl(impl)[0]][0]))


class Case:
    """One measured workload: an inference forward or a training step (L1 loss, Adam), for one implementation."""

    def __init__(self, model: str, size: int, batch: int, impl: str, train: bool, device: str = 'cpu'):
        self.model_name, self.size, self.batch, self.impl, self.train = model, size, batch, impl, train
        self.device = torch.device(device)
        self.net = build(model, impl, device).train(train)
        scale = CONFIGS[model].upscale
        generator = torch.Generator().manual_seed(1)
        self.lr = torch.rand(batch, 3, size, size, generator=generator).to(device)
        self.hr = torch.rand(batch, 3, size * scale, size * scale, generator=generator).to(device) if train else None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=2e-4) if train else None
        base, self.amp = split_impl(impl)
        self.compiled = IMPLS[base][1]
        self.fn = torch.compile(self.net) if self.compiled else self.net

    def run(self) -> torch.Tensor:
        """One forward (or training step); returns the output once the device has finished."""
        with torch.autocast(self.device.type, dtype=self.amp, enabled=self.amp is not None):
            if self.train:
                self.optimizer.zero_grad(set_to_none=True)
                out = self.fn(self.lr)
                F.l1_loss(out.float(), self.hr).backward()
                self.optimizer.step()
            else:
                with torch.no_grad():
                    out = self.fn(self.lr)
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
        return out


def count_flops(model: str, size: int, batch: int, train: bool) -> dict[str, float]:
    """FLOPs of one forward (or forward + backward) of the naive path, counted on the meta device: the total and
    those of each kind of :data:`OP_KINDS`."""
    net = build(model, 'naive', device='meta').train(train)
    x = torch.rand(batch, 3, size, size, device='meta')
    with FlopCounterMode(display=False) as counter, contextlib.nullcontext() if train else torch.no_grad():
        out = net(x)
        if train:
            out.abs().mean().backward()
    by_op = {str(op): count for op, count in counter.get_flop_counts()['Global'].items()}
    flops = {kind: float(sum(by_op.get(op, 0) for op in ops)) for kind, (_, ops) in OP_KINDS.items()}
    return {'total': float(counter.get_total_flops()), **flops}


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 sent to /dev/null: the profiler's C++ side logs its start, stop and a GPU probe there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def time_by_kind(case: Case) -> dict[str, float]:
    """Seconds of one run of the case spent in each kind of operator (self time), the rest under 'other'."""
    with stderr_silenced(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        case.run()
    kind_of = {name: kind for kind, (names, _) in OP_KINDS.items() for name in names}
    seconds = dict.fromkeys([*OP_KINDS, 'other'], 0.0)
    for event in profile.key_averages():
        seconds[kind_of.get(event.key, 'other')] += event.self_cpu_time_total / 1e6
    return seconds


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_gflops(samples: int = 3, device: str = 'cpu') -> list[float]:
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device) for _ in range(2))
    out = a @ b
    sync = torch.cuda.synchronize if torch.device(device).type == 'cuda' else lambda: None

    def matmul() -> None:
        torch.mm(a, b, out=out)
        sync()
    return [2 * MATMUL_SIZE**3 / timed(matmul) / 1e9 for _ in range(samples)]


def cuda_peak_memory(case: Case) -> int:
    """Bytes the case allocates at its peak on the GPU beyond what was allocated before it (one run after a first)."""
    case.run()
    torch.cuda.reset_peak_memory_stats(case.device)
    before = torch.cuda.memory_allocated(case.device)
    case.run()
    return torch.cuda.max_memory_allocated(case.device) - before


def peak_memory(model: str, size: int, batch: int, impl: str, train: bool, threads: int) -> int:
    """Bytes the case adds at its peak on the CPU, measured in a fresh subprocess (see the module docstring)."""
    spec = json.dumps(dict(model=model, size=size, batch=batch, impl=impl, train=train, threads=threads))
    env = {**os.environ, 'MALLOC_MMAP_THRESHOLD_': str(128 * 1024)}
    result = subprocess.run([sys.executable, __file__, '--peak-of', spec], env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f'peak-memory run of {spec} failed:\n{result.stderr[-2000:]}')
    return int(result.stdout.split()[-1])


def resident_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in KiB."""
    with open('/proc/self/status') as status:
        return int(re.search(rf'^{field}:\s+(\d+) kB', status.read(), re.MULTILINE).group(1))


def measure_peak(spec: dict) -> int:
    torch.set_num_threads(spec['threads'])
    case = Case(spec['model'], spec['size'], spec['batch'], spec['impl'], spec['train'])
    case.run()  # once first: compiling, Adam's state and other one-time costs are not the run's memory
    gc.collect()
    with open('/proc/self/clear_refs', 'w') as clear_refs:
        clear_refs.write('5')  # reset the peak resident size to the current one
    before = resident_kib('VmRSS')
    case.run()
    return (resident_kib('VmHWM') - before) * 1024


def benchmark(cases: list[Case], repeats: int, matmul: list[float], warm_up: list[Case],
              device: str = 'cpu') -> dict[str, float]:
    """Median seconds per case, the cases run interleaved after one warm-up run of each case in ``warm_up``; matmul
    samples appended."""
    times: dict[str, list[float]] = {case.impl: [] for case in cases}
    for case in warm_up:
        case.run()
    for _ in range(repeats):
        matmul += matmul_gflops(device=device)
        for case in cases:
            times[case.impl].append(timed(case.run))
    return {impl: statistics.median(samples) for impl, samples in times.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mode', choices=('all', 'infer', 'train'), default='all')
    parser.add_argument('--model', nargs='+', default=['HAT_SRx4'], choices=sorted(CONFIGS),
                        help='models for inference')
    parser.add_argument('--train-model', default='HAT-S_SRx4', choices=sorted(CONFIGS))
    parser.add_argument('--sizes', type=int, nargs='+', default=[64, 128, 192], help='LR sizes for inference')
    parser.add_argument('--batch', type=int, default=1, help='inference batch')
    parser.add_argument('--train-size', type=int, default=64)
    parser.add_argument('--train-batch', type=int, default=2)
    parser.add_argument('--compare', choices=('naive', ), help='also run the reference algorithm')
    parser.add_argument('--compile', action='store_true', help='also run torch.compile (slow to compile)')
    parser.add_argument('--repeats', type=int, help='timed runs per case (default: 5, 2 or 1 for big inputs)')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu', help='cpu, or cuda[:N]')
    parser.add_argument('--amp', choices=sorted(AMP_DTYPES),
                        help='also run the fused path under autocast in this dtype (the naive path stays fp32)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory subprocesses')
    parser.add_argument('--breakdown', action='store_true', help='also print the time by kind of operator')
    parser.add_argument('--huge-pages', action='store_true',
                        help='large CPU tensors on transparent huge pages, as the hat-sr and basicsr commands run '
                        '(default: as THP_MEM_ALLOC_ENABLE in the environment says)')
    parser.add_argument('--peak-of', help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cuda = torch.device(args.device).type == 'cuda'
    if cuda and not torch.cuda.is_available():
        parser.error(f'--device {args.device}: no GPU is visible')
    if cuda and args.breakdown:
        parser.error('--breakdown times CPU operators; it has no meaning with --device cuda')
    if args.huge_pages:
        use_huge_pages()  # before the first large tensor: PyTorch reads it then (and passes it to subprocesses)
    if args.peak_of:
        print(measure_peak(json.loads(args.peak_of)))
        return 0
    torch.set_num_threads(args.threads)

    amp = [f'sdpa+{args.amp}'] if args.amp else []
    workloads = []  # (model, size, batch, train, implementations)
    if args.mode in ('all', 'infer'):
        impls = ['naive'] * (args.compare == 'naive') + ['sdpa'] + amp + ['sdpa+compile'] * args.compile
        workloads += [(model, size, args.batch, False, impls) for model in args.model for size in args.sizes]
    if args.mode in ('all', 'train'):
        impls = ['naive'] * (args.compare == 'naive') + ['sdpa'] + amp + ['sdpa+checkpoint']
        workloads.append((args.train_model, args.train_size, args.train_batch, True, impls))

    rows, breakdown, matmul, warm = [], [], [], set()
    for model, size, batch, train, impls in workloads:
        cases = [Case(model, size, batch, impl, train, args.device) for impl in impls]
        pixels = batch * size * size
        repeats = args.repeats or (5 if pixels <= 64 * 64 * 2 else 2 if pixels <= 128 * 128 else 1)
        # One warm-up per model and mode: later sizes only add kernel set-up, small next to their run time. Compiled
        # cases always: each size compiles anew, minutes that would be timed otherwise.
        warm_up = [case for case in cases if (model, train) not in warm or case.compiled]
        seconds = benchmark(cases, repeats, matmul, warm_up, args.device)
        warm.add((model, train))
        flops = count_flops(model, size, batch, train)
        label = f'{"train " if train else ""}{batch}x{size}x{size}'
        for case in cases if args.breakdown else ():
            for kind, kind_seconds in time_by_kind(case).items():
                breakdown.append(dict(model=model, input=label, impl=case.impl, kind=kind, seconds=kind_seconds,
                                      gflop=flops.get(kind, 0.0) / 1e9))
        peaks = {case.impl: cuda_peak_memory(case) for case in cases} if cuda and not args.no_memory else {}
        del cases
        for impl in impls:
            peak = (None if args.no_memory else peaks[impl] if cuda
                    else peak_memory(model, size, batch, impl, train, args.threads))
            rows.append(dict(model=model, input=label, impl=impl, seconds=seconds[impl], gflop=flops['total'] / 1e9,
                             peak=peak, images=batch / seconds[impl]))
        print(f'done: {model} {size} {impls}', file=sys.stderr, flush=True)

    peak_gflops = statistics.median(matmul)
    huge_pages = 'on' if os.environ.get('THP_MEM_ALLOC_ENABLE') == '1' else 'off'
    where = torch.cuda.get_device_name(args.device) if cuda else f'{args.threads} threads, huge pages {huge_pages}'
    print(f'\nfp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: {peak_gflops:.1f} GFLOP/s (median of {len(matmul)}); '
          f'torch {torch.__version__}, {where}\n')
    header = ('model', 'input', 'impl', 'median s', 'images/s', 'GFLOP', 'GFLOP/s', '% matmul', 'peak MiB',
              'time/naive', 'mem/naive')
    print('| ' + ' | '.join(header) + ' |')
    print('|' + '---|' * len(header))
    for row in rows:
        naive = next((r for r in rows if r['impl'] == 'naive' and r['model'] == row['model']
                      and r['input'] == row['input']), None)
        gflops = row['gflop'] / row['seconds']
        peak = '-' if row['peak'] is None else f'{row["peak"] / 2**20:.0f}'
        time_ratio = f'{row["seconds"] / naive["seconds"]:.2f}' if naive else '-'
        mem_ratio = f'{row["peak"] / naive["peak"]:.2f}' if naive and row['peak'] is not None else '-'
        print(f'| {row["model"]} | {row["input"]} | {row["impl"]} | {row["seconds"]:.2f} | {row["images"]:.2f} | '
              f'{row["gflop"]:.1f} | '
              f'{gflops:.1f} | {100 * gflops / peak_gflops:.0f}% | {peak} | {time_ratio} | {mem_ratio} |')
    if breakdown:
        print('\nWhere the time goes (one profiled run each; self time of the operators of each kind):\n')
        header = ('model', 'input', 'impl', 'kind', 'seconds', 'share', 'GFLOP', 'GFLOP/s', '% matmul')
        print('| ' + ' | '.join(header) + ' |')
        print('|' + '---|' * len(header))
        for row in breakdown:
            total = sum(r['seconds'] for r in breakdown if r['input'] == row['input'] and r['impl'] == row['impl']
                        and r['model'] == row['model'])
            gflops = row['gflop'] / row['seconds'] if row['gflop'] and row['seconds'] else None
            rate = '- | -' if gflops is None else f'{gflops:.1f} | {100 * gflops / peak_gflops:.0f}%'
            print(f'| {row["model"]} | {row["input"]} | {row["impl"]} | {row["kind"]} | {row["seconds"]:.2f} | '
                  f'{100 * row["seconds"] / total:.0f}% | {row["gflop"]:.1f} | {rate} |')
    return 0


if __name__ == '__main__':
    sys.exit(main())
