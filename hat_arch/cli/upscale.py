"""``hat-sr upscale``: super-resolve image files with any HAT checkpoint; the network settings come from the weights.

Inputs are files, folders (their images) or glob patterns. Every check that needs no network (output folder writable,
no two inputs writing one file, outputs that exist) is done before the model loads; an image that cannot be read or
upscaled is reported by name and the run goes on, exiting 1 with a summary at the end.
"""
from __future__ import annotations

import argparse
import glob
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from hat_arch.cli.arguments import add_max_pixels, non_negative_int, positive_float, tile_size
from hat_arch.batch import each_file
from hat_arch.errors import HatError, report_user_errors
from hat_arch.image_io import OUTPUT_EXTENSIONS, is_image_name, output_name
from hat_arch.output_checks import check_outputs, check_writable_folder
from hat_arch.progress import progress_bar
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, checkpoint_or_shipped


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description='Super-resolve images with a HAT or Real-HAT-GAN checkpoint (.pth or .safetensors). '
        'The network settings are read from the checkpoint; outputs keep the input names, bit depth, gray or colour, '
        'and alpha.')
    parser.add_argument('inputs', nargs='+', metavar='INPUT', help='image files, folders (their images) or globs')
    parser.add_argument('-o', '--output', required=True, metavar='OUTDIR',
                        help='output folder (created with the first output)')
    parser.add_argument('-m', '--model', metavar='CHECKPOINT',
                        help="HAT checkpoint, or a built-in model's name (default: the built-in "
                        f'{SHIPPED_MODEL_NAME}, x4)')
    parser.add_argument('--tile', type=tile_size, default='auto', metavar='N|auto',
                        help='tile side in input pixels, at least the network\'s window; auto: the largest that '
                        'fits in free memory, the whole image when it fits; 0: the whole image (default: auto). Out '
                        'of memory is retried with smaller tiles')
    parser.add_argument('--tile-pad', type=non_negative_int, default=32, metavar='P',
                        help='overlapping context around each tile, blended away (default: 32)')
    parser.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...")
    parser.add_argument('--precision', choices=('fp32', 'bf16', 'fp16'), default='fp32',
                        help='weights and computation (default: fp32; bf16 or fp16 halve GPU memory; HAT is not '
                        'fp16-safe: tiles that overflow in fp16 are redone in fp32)')
    parser.add_argument('--ensemble', action='store_true', help='x8 self-ensemble (flips and transposes; x8 time)')
    parser.add_argument('--suffix', default='', help="added to each output name, e.g. '_x4' (default: none)")
    parser.add_argument('--ext', choices=('auto', *OUTPUT_EXTENSIONS), default='auto',
                        help="output format; auto: the input's if png, jpg or webp, else png (default: auto)")
    parser.add_argument('--alpha', choices=('model', 'bicubic'), default='model',
                        help='how transparency is upscaled: by the network (sharp edges, x2 time) or bicubic '
                        '(default: model)')
    parser.add_argument('--img-range', type=positive_float, default=None,
                        help='pixel range the network was trained in; weights do not show it (default: 1, as the '
                        'released models)')
    parser.add_argument('--overwrite', action='store_true', help='replace existing outputs (default: skip them)')
    add_max_pixels(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = 'hat-sr upscale') -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    return report_user_errors(lambda: _run(args, prog), prog)


@dataclass
class Job:
    source: Path
    target: Path


def _run(args: argparse.Namespace, prog: str) -> int:
    # Unreadable images are reported here, by name, in one line; OpenCV's own log line for them is noise.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    from hat_arch.checkpoint import resolve_device

    device = resolve_device(args.device)
    sources, failures = collect_inputs(args.inputs, prog)
    out_dir = Path(args.output)
    check_writable_folder(out_dir)
    jobs = plan_outputs(sources, out_dir, args.suffix, args.ext)
    todo = []
    for job in jobs:
        if args.overwrite or not job.target.exists():
            todo.append(job)
        else:
            print(f'skip {job.source}: {job.target} exists (--overwrite to replace it)', file=sys.stderr)

    done, seconds_total = 0, 0.0
    if todo:
        from hat_arch.api import upscale_file
        from hat_arch.checkpoint import describe, load_model
        from hat_arch.inference import check_tile_size

        overrides = {} if args.img_range is None else {'img_range': args.img_range}
        checkpoint = checkpoint_or_shipped(args.model, announce=lambda note: print(f'{prog}: {note}', file=sys.stderr))
        model = load_model(checkpoint, device=device, precision=args.precision, **overrides)
        info = describe(model)
        check_tile_size(args.tile, info.window_size)
        print(f'{info.summary()} on {next(model.parameters()).device}, {args.precision}', file=sys.stderr)
        bar = tqdm(total=len(todo), unit='image', file=sys.stderr, dynamic_ncols=True)

        def upscale_one(job: Job) -> str:
            with progress_bar(job.source.name, 'tile', leave=False) as tiles:
                return upscale_file(model, job.source, job.target, tile=args.tile, tile_pad=args.tile_pad,
                                    ensemble=args.ensemble, alpha=args.alpha, max_pixels=args.max_pixels,
                                    warn=lambda note: bar.write(f'{prog}: {note}', file=sys.stderr), progress=tiles)

        for outcome in each_file(todo, upscale_one, name=lambda job: str(job.source)):
            bar.update()
            job = outcome.item
            if outcome.failed:
                failures.append(str(job.source))
                bar.write(f'{prog}: error: {outcome.error}', file=sys.stderr)
                continue
            done, seconds_total = done + 1, seconds_total + outcome.seconds
            bar.set_postfix_str(f'{job.source.name} {outcome.seconds:.2f} s')
            bar.write(f'{job.source} -> {job.target}: {outcome.result} in {outcome.seconds:.2f} s', file=sys.stderr)
        bar.close()

    summary = f'{done} upscaled into {out_dir}'
    if done:
        summary += f' in {seconds_total:.1f} s ({seconds_total / done:.2f} s per image)'
    if len(jobs) > len(todo):
        summary += f', {len(jobs) - len(todo)} skipped (outputs exist)'
    if failures:
        summary += f', {len(failures)} failed: ' + ', '.join(failures)
    print(summary, file=sys.stderr)
    return 1 if failures else 0


def collect_inputs(patterns: list[str], prog: str) -> tuple[list[Path], list[str]]:
    """Image files named by ``patterns`` (files, folders' images, glob matches), in order, without repeats; and the
    patterns that name nothing, each reported on stderr as an error of ``prog``."""
    sources: list[Path] = []
    failures: list[str] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p))
        elif path.is_file():
            found = [path]
        elif glob.has_magic(pattern):
            found = sorted(Path(p) for p in glob.glob(pattern, recursive=True)
                           if Path(p).is_file() and is_image_name(p))
        else:
            found = []
        if not found:
            failures.append(pattern)
        seen = {p.resolve() for p in sources}
        sources += [p for p in found if p.resolve() not in seen]
    if not sources:
        raise HatError(f'{", ".join(patterns)}: no such file, or no images there')
    for pattern in failures:  # the others are upscaled; the exit status says some failed
        print(f'{prog}: error: {pattern}: no such file, or no images there', file=sys.stderr)
    return sources, failures


def plan_outputs(sources: list[Path], out_dir: Path, suffix: str, ext: str) -> list[Job]:
    """One output per input: its name plus ``suffix``, in ``out_dir``. HatError if two inputs would write one file or
    an output would replace an input (its own or another's)."""
    jobs = []
    for source in sources:
        jobs.append(Job(source, out_dir / output_name(source, suffix, ext)))
    check_outputs(((job.source, job.target) for job in jobs), 'choose another -o folder or a --suffix')
    return jobs
