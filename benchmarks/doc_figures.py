"""The figures the docs quote (times, PSNR), each printed with the machine and load it was measured under.

    python benchmarks/doc_figures.py machine        # the conditions alone: CPU, cores, load, torch and its threads
    python benchmarks/doc_figures.py demo           # the CPU demo: train and test times, PSNR/SSIM on Set5 and Set14
    python benchmarks/doc_figures.py tests          # the quick loop (pytest -m "not slow"); --all: the whole suite
    python benchmarks/doc_figures.py upscale        # hat-sr upscale of Set14 x4 with HAT-S x4 (random weights)
    python benchmarks/doc_figures.py perf -- --compare naive --breakdown   # bench_hat.py with the conditions
    python benchmarks/doc_figures.py yolo -- --repeats 3 --threads 2       # bench_yolo.py with the conditions

Each measured command runs in a subprocess, as a user would run it, with ``--threads`` (default: every core) as
OMP_NUM_THREADS. The load average is sampled every two seconds while it runs: times on a shared machine move with
the load, so a figure is only meaningful next to its load range, and the docs quote both.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from machine import machine, usable_cores  # benchmarks/machine.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
DEMO_OPTIONS = ('options/demo/train_HAT_demo_SRx4.yml', 'options/demo/test_HAT_demo_SRx4.yml')
DEMO_RESULTS = 'results/HAT_demo_SRx4_test/metrics.json'
LOAD_SAMPLE_SECONDS = 2.0


class LoadSampler:
    """The 1-minute load average, sampled in the background while a measured command runs."""

    def __init__(self):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(LOAD_SAMPLE_SECONDS):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def __str__(self) -> str:
        return f'load average {min(self.samples):.1f}-{max(self.samples):.1f}'


def run_timed(command: list[str], threads: int, cwd: Path = ROOT, quiet: bool = True) -> tuple[float, LoadSampler]:
    """Seconds the command took and the load while it ran; its output is shown only if it fails (or not quiet)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get('PYTHONPATH', '')) if p))
    with LoadSampler() as load:
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f'{" ".join(command)} failed (exit {done.returncode}):\n{done.stdout or ""}')
    return seconds, load


def console_script(name: str) -> str:
    """The console script beside this interpreter (a venv's bin/), else the one on PATH."""
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else shutil.which(name) or name


def demo(threads: int) -> None:
    """The README's demo, in an empty folder that sees only the repository's datasets (no earlier run is archived)."""
    with tempfile.TemporaryDirectory(prefix='hat_demo_') as folder:
        work = Path(folder)
        (work / 'datasets').symlink_to(ROOT / 'datasets')
        times = {}
        for step, options in zip(('train', 'test'), DEMO_OPTIONS):
            times[step] = run_timed([console_script('basicsr'), step, '-opt', str(ROOT / options)], threads, work)
        metrics = json.loads((work / DEMO_RESULTS).read_text())
    for step, (seconds, load) in times.items():
        print(f'basicsr {step}: {seconds / 60:.1f} min ({load})')
    print('\n| dataset | psnr | ssim |\n| --- | --- | --- |')
    for name, values in metrics.items():
        print(f"| {name} | {values['psnr']:.4f} | {values['ssim']:.4f} |")


def tests(threads: int, everything: bool) -> None:
    selection = [] if everything else ['-m', 'not slow']
    seconds, load = run_timed([sys.executable, '-m', 'pytest', '-q', *selection], threads, quiet=False)
    print(f'\npytest {" ".join(selection) or "(all tests)"}: {seconds / 60:.1f} min ({load})')


def write_hat_s_checkpoint(path: Path) -> None:
    """HAT-S x4 with random weights: the released model's compute, without its file (nothing is downloaded)."""
    import torch

    sys.path.insert(0, str(ROOT / 'benchmarks'))
    from bench_hat import build

    torch.save({'params_ema': build('HAT-S_SRx4', 'sdpa').state_dict()}, path)


def upscale(threads: int, model: str | None) -> None:
    images = sorted((ROOT / 'datasets' / 'Set14' / 'LRbicx4').glob('*.png'))
    with tempfile.TemporaryDirectory(prefix='hat_upscale_') as folder:
        checkpoint = Path(model) if model else Path(folder) / 'HAT-S_SRx4_random.pth'
        if not model:
            write_hat_s_checkpoint(checkpoint)
        command = [console_script('hat-sr'), 'upscale', str(images[0].parent), '-o', str(Path(folder) / 'out'),
                   '-m', str(checkpoint), '--device', 'cpu']
        seconds, load = run_timed(command, threads)
    print(f'hat-sr upscale of Set14 x4 ({len(images)} images, {checkpoint.name}, whole images, fp32, model loading '
          f'included): {seconds:.0f} s, {seconds / len(images):.1f} s per image ({load})')


def wrapped_benchmark(script: str, threads: int, arguments: list[str]) -> None:
    seconds, load = run_timed([sys.executable, str(ROOT / 'benchmarks' / script), *arguments], threads, quiet=False)
    print(f'\n{script} {" ".join(arguments)}: {seconds / 60:.1f} min ({load})')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('figure', choices=['machine', 'demo', 'tests', 'upscale', 'perf', 'yolo'])
    parser.add_argument('arguments', nargs='*', help='perf, yolo: arguments of bench_hat.py / bench_yolo.py, after --')
    parser.add_argument('--threads', type=int, default=usable_cores(), help='OMP_NUM_THREADS (default: every core)')
    parser.add_argument('--all', action='store_true', help='tests: the whole suite, slow tests included')
    parser.add_argument('--model', help='upscale: a checkpoint to time instead of HAT-S x4 with random weights')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(machine(args.threads), end='\n\n', flush=True)
    if args.figure == 'demo':
        demo(args.threads)
    elif args.figure == 'tests':
        tests(args.threads, args.all)
    elif args.figure == 'upscale':
        upscale(args.threads, args.model)
    elif args.figure in ('perf', 'yolo'):
        wrapped_benchmark(f'bench_{"hat" if args.figure == "perf" else args.figure}.py', args.threads, args.arguments)
    if args.figure != 'machine':
        print('\nafter the run:', f'load average {", ".join(f"{x:.2f}" for x in os.getloadavg())}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
