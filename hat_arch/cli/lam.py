"""``hat-sr lam``: local attribution map (LAM) and diffusion index (DI) of a checkpoint for one output box.

Writes a figure (input with the box | LAM map | area used | output) and a JSON file with the DI and the settings;
prints the DI. See :mod:`hat_arch.attribution` for the method.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

import hat_arch
from hat_arch import attribution
from hat_arch.atomic_write import write_text_atomic
from hat_arch.cli.arguments import add_max_pixels, non_negative_float, positive_int
from hat_arch.errors import HatError, report_user_errors
from hat_arch.image_io import write_image
from hat_arch.output_checks import check_writable_folder
from hat_arch.progress import progress_bar
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, checkpoint_or_shipped


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        box = tuple(int(v) for v in text.split(','))
    except ValueError:
        box = ()
    if len(box) != 4 or min(box[:2]) < 0 or min(box[2:]) < 1:
        raise argparse.ArgumentTypeError(f'expected x,y,w,h (integers, x,y >= 0, w,h >= 1), got {text!r}')
    return box


def _odd_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f'expected an odd number, got {text!r}')
    return value


def _fraction(text: str) -> float:
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f'expected a number in [0, 1], got {text!r}')
    return value


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description='Local attribution map (Gu & Dong, CVPR 2021) of a super-resolution checkpoint: which '
        'input pixels the network used for one box of its output, and the diffusion index (DI, 0-100, higher = more '
        'pixels used). Writes OUT.png (figure) and OUT.json (DI and settings).')
    parser.add_argument('-m', '--model', metavar='CHECKPOINT',
                        help="checkpoint (.pth or .safetensors), or a built-in model's name (default: the built-in "
                        f'{SHIPPED_MODEL_NAME}, x4)')
    parser.add_argument('-i', '--input', required=True, help='input (low-resolution) image')
    parser.add_argument('--box', required=True, type=_box, metavar='X,Y,W,H',
                        help='the box of the OUTPUT (super-resolved) image to explain, in output pixels: left column, '
                        'top row, width, height (LAM uses 16x16)')
    parser.add_argument('-o', '--output', help='figure path (.png) or an existing folder; the JSON goes beside it '
                        '(default: INPUT-NAME_lam.png in the current folder)')
    parser.add_argument('--steps', type=positive_int, default=attribution.STEPS,
                        help='path steps, one forward and backward pass each (default: %(default)s)')
    parser.add_argument('--sigma', type=non_negative_float, default=attribution.SIGMA,
                        help='Gaussian blur sigma of the baseline (default: %(default)s)')
    parser.add_argument('--kernel-size', type=_odd_int, default=attribution.KERNEL_SIZE,
                        help='blur kernel side, odd (default: %(default)s)')
    parser.add_argument('--alpha', type=_fraction, default=0.5, help="the input's weight in the figure's blends "
                        '(default: %(default)s)')
    parser.add_argument('--batch-size', type=positive_int, default=1, help='path steps per pass (default: 1)')
    parser.add_argument('--device', default='auto',
                        help="'auto' (a CUDA GPU when there is one), 'cpu', 'cuda', 'cuda:1', ... (default: auto)")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing figure or JSON')
    add_max_pixels(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = 'hat-sr lam') -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    return report_user_errors(lambda: _run(args, prog), prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    figure_path, json_path = _output_paths(args)
    checkpoint = checkpoint_or_shipped(args.model, announce=lambda note: print(f'{prog}: {note}', file=sys.stderr))
    model = hat_arch.load_model(checkpoint, device=args.device)
    start = time.perf_counter()
    with progress_bar('LAM', 'step') as progress:
        result = attribution.lam_file(model, args.input, args.box, max_pixels=args.max_pixels, sigma=args.sigma,
                                      steps=args.steps, kernel_size=args.kernel_size, batch_size=args.batch_size,
                                      progress=progress)
    seconds = time.perf_counter() - start

    figure_path.parent.mkdir(parents=True, exist_ok=True)
    write_image(figure_path, result.figure(args.alpha), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    x, y, w, h = args.box
    report = {
        'diffusion_index': None if np.isnan(result.diffusion_index) else round(result.diffusion_index, 4),
        'model': str(checkpoint),
        'input': str(args.input),
        'box': {'x': x, 'y': y, 'w': w, 'h': h, 'in': 'output pixels'},
        'input_size': list(result.image.shape[-2:]),
        'output_size': list(result.output.shape[-2:]),
        'target': 'sum of the output gradient magnitude over the box',
        'path': {'kind': 'gaussian blur', 'sigma': args.sigma, 'kernel_size': args.kernel_size, 'steps': args.steps},
        'device': str(next(model.parameters()).device),
        'seconds': round(seconds, 2),
        'figure': str(figure_path),
        'hat_arch_version': hat_arch.__version__,
    }
    write_text_atomic(json_path, json.dumps(report, indent=2) + '\n')
    if np.isnan(result.diffusion_index):
        print('DI undefined: the attribution is zero everywhere (the box does not depend on the input)')
    else:
        print(f'DI {result.diffusion_index:.2f}')
    print(f'wrote {figure_path} and {json_path}')
    return 0


def _output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """Figure and JSON paths, checked before any work: their folder is writable and nothing is overwritten unasked."""
    name = f'{Path(args.input).stem}_lam.png'
    figure = Path(args.output) if args.output else Path(name)
    if figure.is_dir():
        figure = figure / name
    if figure.suffix.lower() != '.png':
        raise HatError(f'figure {figure} must be a .png file (or -o an existing folder)')
    json_path = figure.with_suffix('.json')
    for path in (figure, json_path):
        if path.exists() and not args.overwrite:
            raise HatError(f'{path} exists; pass --overwrite to replace it')
    check_writable_folder(figure.parent)
    return figure, json_path
