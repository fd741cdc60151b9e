"""Size, GFLOPs and CPU time of plain YOLOv8 against the shipped HAT layouts (the README's "HAT in YOLO" table).

    python benchmarks/bench_yolo.py                         # YOLOv8n/s, each plain, HAT on layer 0, HAT on the neck
    python benchmarks/bench_yolo.py --scales n --repeats 5 --threads 2

For each model it prints:

* parameters and GFLOPs as Ultralytics' ``model.info()`` prints them for the model built from its YAML (its THOP
  count: convolutions and linear layers at 640x640, not attention's matrix products);
* GFLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` in one 640x640 forward, with HAT on its explicit
  attention path (same function) so that attention's matrix products are counted too;
* the median and the fastest time of one 640x640 forward (batch 1, ``torch.inference_mode``) of the model as
  Ultralytics predicts with it (eval mode, convolutions fused with their batch norms) on the CPU with ``--threads``
  threads: one warm-up forward, then ``--repeats`` timed ones, model after model (timed in turns, the first forward
  after a layer-0 model's paid for the memory that one had freed); the load average is printed with the table.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

LAYOUTS = {'plain': 'yolov8{scale}.yaml', 'HAT layer 0 (article)': 'yolov8{scale}-hat-layer0.yaml',
           'HAT on neck P3-P5': 'yolov8{scale}-hat-neck.yaml'}
SIZE = 640


def build(scale: str, pattern: str):
    from ultralytics import YOLO

    from hat_arch.yolo import model_yaml

    name = pattern.format(scale=scale)
    return name, YOLO(model_yaml(name) if '-hat-' in name else name).model


def count_gflops(model: torch.nn.Module, image: torch.Tensor) -> float:
    """GFLOPs of one forward, the HAT blocks counted on their naive path as bench_hat.py counts them: the same work
    whichever path runs."""
    from hat_arch.archs.hat_arch import HAT

    hats = [m for m in model.modules() if isinstance(m, HAT)]
    impls = [hat.attn_impl for hat in hats]
    try:
        for hat in hats:
            hat.set_attn_impl('naive')
        with FlopCounterMode(display=False) as counter:
            model(image)
    finally:
        for hat, impl in zip(hats, impls):
            hat.set_attn_impl(impl)
    return counter.get_total_flops() / 1e9


def forward_seconds(model: torch.nn.Module, image: torch.Tensor) -> float:
    start = time.perf_counter()
    model(image)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scales', nargs='+', default=['n', 's'], choices=list('nsmlx'))
    parser.add_argument('--repeats', type=int, default=5, help='timed forwards per model (default: 5)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='CPU threads (default: all)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import hat_arch.yolo  # noqa: F401  (registers HAT)

    image = torch.rand(1, 3, SIZE, SIZE)
    cases = []
    for scale in args.scales:
        for layout, pattern in LAYOUTS.items():
            name, model = build(scale, pattern)
            _, params, _, gflops = model.info()  # prints its summary line too
            cases.append((f'| {name} | {layout} | {params / 1e6:.2f} M | {gflops:.1f} |',
                          model.fuse(verbose=False).eval(), []))
    with torch.inference_mode():
        counted = [count_gflops(model, image) for _, model, _ in cases]
        for _, model, times in cases:
            forward_seconds(model, image)  # warm-up: the allocations of another model's forward are not its own
            times.extend(forward_seconds(model, image) for _ in range(args.repeats))
    rows = [f'{row} {gflops:.1f} | {statistics.median(times) * 1e3:.0f} ms | {min(times) * 1e3:.0f} ms |'
            for (row, _, times), gflops in zip(cases, counted)]
    load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
    print(f'\nCPU: {torch.get_num_threads()} threads of {os.cpu_count()} cores, load average {load}; '
          f'{args.repeats} forwards per model after one warm-up, at {SIZE}x{SIZE}, batch 1\n')
    print('| model | HAT placement | parameters | GFLOPs (model.info) | GFLOPs (incl. attention) | CPU time, median '
          '| fastest |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
