"""The model shipped inside hat_arch: its size, its quality on Set5 and Set14 x4, and its speed on a 500x500 photo.

    python benchmarks/bench_shipped_model.py                 # all three, on this machine's CPU
    python benchmarks/bench_shipped_model.py --threads 1 2   # the photo's time with 1 and with 2 threads

Quality is measured as papers (and ``basicsr test -opt options/test/HAT-T_SRx4_T91.yml``) measure it: the LR images of
``datasets/<set>/LRbicx4`` upscaled, rounded to 8 bits, PSNR/SSIM on the Y channel with 4 border pixels cropped
(``basicsr.metrics``), next to MATLAB-bicubic upsampling of the same images. Speed: ``hat_arch.upscale`` on a
500x500 RGB photo (Set14's baboon, cropped), the median of ``--repeats`` runs after one warm-up, with the machine's
CPU, cores and load average printed beside it, since shared machines move these times 2-3x.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from machine import machine  # benchmarks/machine.py, beside this script

import hat_arch
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, SHIPPED_MODEL_PATH

DATA = Path(__file__).resolve().parents[1] / 'datasets'


def quality(model: torch.nn.Module, dataset: str) -> tuple[float, float, float, float]:
    """Mean PSNR and SSIM (Y, border 4) of the model and of bicubic on ``datasets/<dataset>`` x4."""
    from basicsr.metrics import calculate_psnr, calculate_ssim  # after hat_arch, whose fixes BasicSR needs
    from basicsr.utils.matlab_functions import imresize

    scores = []
    for gt_path in sorted((DATA / dataset / 'GTmod4').glob('*.png')):
        gt = cv2.imread(str(gt_path))
        lr = cv2.imread(str(DATA / dataset / 'LRbicx4' / gt_path.name))
        sr = hat_arch.upscale(model, lr, tile=None)
        bicubic = np.clip(np.round(imresize(lr.astype(np.float64) / 255, 4) * 255), 0, 255).astype(np.uint8)
        scores.append([metric(out, gt, crop_border=4, test_y_channel=True) for out in (sr, bicubic)
                       for metric in (calculate_psnr, calculate_ssim)])
    return tuple(np.mean(scores, axis=0))


def photo_seconds(model: torch.nn.Module, threads: int, repeats: int) -> float:
    photo = np.ascontiguousarray(cv2.resize(cv2.imread(str(DATA / 'Set14' / 'GTmod4' / 'baboon.png')), (500, 500),
                                            interpolation=cv2.INTER_AREA))
    torch.set_num_threads(threads)
    hat_arch.upscale(model, photo)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        hat_arch.upscale(model, photo)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--threads', type=int, nargs='+', default=[torch.get_num_threads()])
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args(argv)
    model = hat_arch.load_model(device='cpu')
    info = hat_arch.checkpoint.describe(model)
    print(f'{SHIPPED_MODEL_NAME}: {info.summary()}, {info.num_params:,} parameters, '
          f'{SHIPPED_MODEL_PATH.stat().st_size / 2**20:.2f} MiB file')
    print('\n| set | HAT-T PSNR | SSIM | bicubic PSNR | SSIM |\n| --- | --- | --- | --- | --- |')
    for dataset in ('Set5', 'Set14'):
        psnr, ssim, bic_psnr, bic_ssim = quality(model, dataset)
        print(f'| {dataset} | {psnr:.2f} | {ssim:.4f} | {bic_psnr:.2f} | {bic_ssim:.4f} |')
    print(f'\n500x500 RGB photo -> 2000x2000, median of {args.repeats} after a warm-up:')
    for threads in args.threads:
        print(f'  {threads} thread(s): {photo_seconds(model, threads, args.repeats):.2f} s')
    print(machine(torch.get_num_threads()))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
