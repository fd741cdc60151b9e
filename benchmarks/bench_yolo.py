"""Size, GFLOPs and CPU time of plain YOLO detectors against their shipped HAT layouts (the table of docs/yolo.md).

    python benchmarks/bench_yolo.py            # YOLOv8n, YOLO11n, YOLO26n: plain and HAT on the neck; v8 also layer 0
    python benchmarks/bench_yolo.py --families yolo11 --scales n s --repeats 5 --threads 2

For each model it prints:

* parameters and GFLOPs as Ultralytics' ``model.info()`` prints them for the model built from its YAML (its THOP
  count: convolutions and linear layers at 640x640, not attention's matrix products);
* GFLOPs counted by ``torch.utils.flop_counter.FlopCounterMode`` in one 640x640 forward, with HAT on its explicit
  attention path (same function) so that attention's matrix products are counted too;
* the median and the fastest time of one 640x640 forward (batch 1, ``torch.inference_mode``) of the model as
  Ultralytics predicts with it (eval mode, convolutions fused with their batch norms) on the CPU with ``--threads``
  threads: one warm-up forward, then ``--repeats`` timed ones, model after model (timed in turns, the first forward
  after a layer-0 model's paid for the memory that one had freed).

The machine's conditions are printed with the table: CPU model, cores, threads, load average before and after,
torch and Ultralytics versions.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from machine import machine  # benchmarks/machine.py, beside this script

FAMILIES = ('yolov8', 'yolo11', 'yolo26')
LAYOUTS = {'none (plain)': '{family}{scale}.yaml', 'neck outputs P3-P5': '{family}{scale}-hat-neck.yaml',
           'layer 0, on the image (article)': '{family}{scale}-hat-layer0.yaml'}
SIZE = 640


def build(name: str):
    from ultralytics import YOLO

    return YOLO(name).model


def load_average() -> str:
    return ', '.join(f'{x:.1f}' for x in os.getloadavg())


def forward_seconds(model: torch.nn.Module, image: torch.Tensor) -> float:
    start = time.perf_counter()
    model(image)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--families', nargs='+', default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument('--scales', nargs='+', default=['n'], choices=list('nsmlx'))
    parser.add_argument('--repeats', type=int, default=5, help='timed forwards per model (default: 5)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(), help='CPU threads (default: all)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from hat_arch.yolo import shipped_names
    from hat_arch.yolo.cost import count_gflops

    shipped = shipped_names()
    load_before = load_average()
    image = torch.rand(1, 3, SIZE, SIZE)
    cases = []
    for family in args.families:
        for scale in args.scales:
            for placement, pattern in LAYOUTS.items():
                name = pattern.format(family=family, scale=scale)
                if '-hat-' in name and pattern.format(family=family, scale='') not in shipped:
                    continue
                model = build(name)
                _, params, _, gflops = model.info()  # prints its summary line too
                cases.append((f'| `{name}` | {placement} | {params / 1e6:.2f} M | {gflops:.1f} |',
                              model.fuse(verbose=False).eval(), []))
    with torch.inference_mode():
        counted = [count_gflops(model, SIZE) for _, model, _ in cases]
        for _, model, times in cases:
            forward_seconds(model, image)  # warm-up: the allocations of another model's forward are not its own
            times.extend(forward_seconds(model, image) for _ in range(args.repeats))
    rows = [f'{row} {gflops:.1f} | {statistics.median(times) * 1e3:.0f} ms | {min(times) * 1e3:.0f} ms |'
            for (row, _, times), gflops in zip(cases, counted)]
    import ultralytics

    print(f'\n{machine(torch.get_num_threads())}\nUltralytics {ultralytics.__version__}; load average {load_before} '
          f'before, {load_average()} after; {args.repeats} forwards per model after one warm-up, at {SIZE}x{SIZE}, '
          'batch 1\n')
    print('| model | HAT placement | parameters | GFLOPs (model.info) | GFLOPs (incl. attention) | CPU time, median '
          '| fastest |')
    print('| --- | --- | --- | --- | --- | --- | --- |')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
