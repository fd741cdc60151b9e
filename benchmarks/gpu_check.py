"""The Python steps of ``benchmarks/gpu_check.sh``: a short bf16 training recipe, and an upscale that must survive
running out of GPU memory.

    python benchmarks/gpu_check.py train FOLDER    # the demo recipe, short, under bf16 autocast, run in FOLDER
    python benchmarks/gpu_check.py oom-upscale     # CUDA: a whole image under a memory cap it exceeds

Each prints one line that says what happened, and fails (exit status 1, a traceback) if it did not go as it must.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'options' / 'demo' / 'train_HAT_demo_SRx4.yml'
NAME = 'gpu_check_bf16'
ITERATIONS = 100
# The upscale: a HAT-S x4 on a 1024 x 1024 image needs far more than the cap as one piece (about 20 KiB per input
# pixel), while 256-pixel tiles fit.
OOM_SIDE = 1024
OOM_CAP_GIB = 4.0


def training_options(folder: Path) -> Path:
    """The demo recipe for ``ITERATIONS`` iterations under bf16 autocast, data paths made absolute, validated and
    saved at the end: ``folder/train_bf16.yml``."""
    opt = yaml.safe_load(DEMO.read_text())
    opt['name'] = NAME
    for dataset in opt['datasets'].values():
        for key in ('dataroot_gt', 'dataroot_lq'):
            if key in dataset:
                dataset[key] = str(ROOT / dataset[key])
    opt['train'].update(amp='bf16', total_iter=ITERATIONS, warmup_iter=ITERATIONS // 5)  # the demo warms up for 150
    opt['train']['scheduler']['periods'] = [ITERATIONS]
    opt['val']['val_freq'] = ITERATIONS
    opt['logger'].update(print_freq=ITERATIONS // 5, save_checkpoint_freq=ITERATIONS)
    path = folder / 'train_bf16.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def train(folder: Path) -> str:
    """``python -m hat_arch.train`` on :func:`training_options` in ``folder``; its checkpoint must be written."""
    options = training_options(folder)
    subprocess.run([sys.executable, '-m', 'hat_arch.train', '-opt', options.name], cwd=folder, check=True)
    experiment = folder / 'experiments' / NAME
    checkpoint = experiment / 'models' / 'net_g_latest.pth'
    if not checkpoint.is_file():
        raise AssertionError(f'training ended without writing {checkpoint}')
    log = '\n'.join(path.read_text() for path in sorted(experiment.glob('train_*.log')))
    psnr = re.findall(r'# psnr: (\S+)', log)
    return f'bf16: {ITERATIONS} iterations, Set5 PSNR {psnr[-1] if psnr else "not logged"} dB, wrote {checkpoint}'


def oom_upscale(side: int = OOM_SIDE, cap_gib: float = OOM_CAP_GIB) -> str:
    """Upscale a ``side`` x ``side`` image whole with a HAT-S on CUDA under a ``cap_gib`` memory cap; the run must
    run out of memory and finish in smaller tiles. Returns what happened, in one line."""
    import numpy as np
    import torch

    import hat_arch

    device = torch.device('cuda')
    model = hat_arch.create_model('HAT-S_SRx4').to(device).eval()  # random weights: the retry is checked
    image = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    total_memory = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / total_memory), device)
    totals = []
    output = hat_arch.upscale(model, image, tile=None, progress=lambda done, total: totals.append(total))
    if output.shape != (4 * side, 4 * side, 3):
        raise AssertionError(f'output shape {output.shape}, expected {(4 * side, 4 * side, 3)}')
    if totals[0] != 1 or totals[-1] <= 1:
        raise AssertionError(f'no out-of-memory retry: the network calls went {sorted(set(totals))}')
    return (f'{side}x{side} whole image ran out of memory under a {cap_gib:g} GiB cap; finished in {totals[-1]} '
            f'tiles (tile counts tried: {list(dict.fromkeys(totals))})')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('train').add_argument('folder', type=Path)
    commands.add_parser('oom-upscale')
    args = parser.parse_args(argv)
    print(train(args.folder) if args.command == 'train' else oom_upscale())
    return 0


if __name__ == '__main__':
    sys.exit(main())
