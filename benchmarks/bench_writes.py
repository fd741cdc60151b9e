"""Cost of the atomic writer: the same encoded outputs written as ``cv2.imwrite`` writes (in place), through
:func:`hat_arch.atomic_write.write_atomic` without fsync, and with fsync (what ``hat-sr upscale`` does); and the
share of an upscale run (the tiny test model, or ``-m``) that writing takes.

    python benchmarks/bench_writes.py                    # 20 PNGs of 1024x1024 (an x4 output of 256x256)
    python benchmarks/bench_writes.py --side 2048 --count 10 --folder /mnt/disk

Prints the median time per file of each way and the upscale time per image, with the folder's file system.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hat_arch.atomic_write import write_bytes_atomic  # noqa: E402


def in_place(path: Path, data: bytes) -> None:
    with open(path, 'wb') as file:
        file.write(data)


def timed(write, folder: Path, data: bytes, count: int) -> float:
    times = []
    for n in range(count):
        start = time.perf_counter()
        write(folder / f'{n}.png', data)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--side', type=int, default=1024, help='output side in pixels (default: 1024)')
    parser.add_argument('--count', type=int, default=20, help='files per way (default: 20)')
    parser.add_argument('--folder', default=None, help='where to write (default: a temporary folder)')
    parser.add_argument('-m', '--model', default=None, help='checkpoint for the upscale share (default: tiny test one)')
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    small = cv2.GaussianBlur(rng.integers(0, 256, (args.side // 4, args.side // 4, 3), dtype=np.uint8), (5, 5), 2)
    image = cv2.resize(small, (args.side, args.side), interpolation=cv2.INTER_CUBIC)  # photo-like: compresses
    data = cv2.imencode('.png', image)[1].tobytes()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        fs = subprocess.run(['stat', '-f', '-c', '%T', folder], capture_output=True, text=True).stdout.strip()
        print(f'{args.count} PNGs of {args.side}x{args.side} ({len(data) / 2**20:.2f} MiB) in {folder} ({fs}), '
              f'load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
        ways = {'in place (open/write, as cv2.imwrite)': in_place,
                'atomic, no fsync': lambda p, d: write_bytes_atomic(p, d, durable=False),
                'atomic + fsync (hat-sr upscale)': write_bytes_atomic}
        results = {}
        for name, write in ways.items():
            sub = Path(folder) / str(len(results))
            sub.mkdir()
            results[name] = timed(write, sub, data, args.count)
            print(f'  {name:40s} {results[name] * 1e3:8.2f} ms per file')
        model_seconds = upscale_seconds(args.model, small)
        if model_seconds:
            extra = results['atomic + fsync (hat-sr upscale)'] - results['in place (open/write, as cv2.imwrite)']
            print(f'  upscale of {small.shape[1]}x{small.shape[0]} (network only): {model_seconds:.2f} s; the '
                  f'atomic writer adds {extra * 1e3:.2f} ms = {100 * extra / model_seconds:.3f} % of it')


def upscale_seconds(model_path: str | None, image: np.ndarray) -> float | None:
    import torch

    import hat_arch

    if model_path is None:
        golden = Path(__file__).resolve().parents[1] / 'tests' / 'golden' / 'tiny_x4.pt'
        model_path = Path(tempfile.mkdtemp()) / 'tiny_x4.pth'
        torch.save({'params_ema': torch.load(golden, weights_only=True)['params']}, model_path)
    model = hat_arch.load_model(model_path, device='cpu')
    start = time.perf_counter()
    hat_arch.upscale(model, image)
    return time.perf_counter() - start


if __name__ == '__main__':
    main()
