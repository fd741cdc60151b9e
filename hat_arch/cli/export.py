"""``hat-sr export``: a HAT checkpoint as an ONNX model taking any batch, height and width, checked with onnxruntime.

The graph is traced (TorchScript exporter; HAT takes its naive attention path then) with an input that is not a
multiple of the window, so the network's own reflect padding and final crop are recorded for every size: the ONNX
model takes (b, c, h, w) RGB (or gray) in [0, 1] of any size and returns (b, c, h*scale, w*scale), like the PyTorch
model.
(``torch.export``-based ``dynamo=True`` export takes hours for HAT's symbolic shapes.)
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

from tqdm import tqdm

from hat_arch.atomic_write import write_bytes_atomic
from hat_arch.cli.arguments import positive_float
from hat_arch.errors import HatError, report_user_errors
from hat_arch.finite import NonFiniteOutput, first_non_finite_weight, non_finite_message
from hat_arch.onnx_export import MAX_OPSET, MIN_OPSET, TOLERANCE, export_onnx, verify_onnx
from hat_arch.output_checks import check_writable_folder
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, checkpoint_or_shipped


def _opset(text: str) -> int:
    if not text.isdigit() or not MIN_OPSET <= int(text) <= MAX_OPSET:
        raise argparse.ArgumentTypeError(f'expected an ONNX opset from {MIN_OPSET} to {MAX_OPSET}, got {text!r}')
    return int(text)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description='Export a HAT checkpoint to ONNX with dynamic batch, height and width; verified '
        f'against PyTorch with onnxruntime (max difference <= {TOLERANCE:g}) when it is installed '
        "(pip install 'hat_arch[onnx]').")
    parser.add_argument('-m', '--model', metavar='CHECKPOINT',
                        help="HAT checkpoint, or a built-in model's name (default: the built-in "
                        f'{SHIPPED_MODEL_NAME}, x4)')
    parser.add_argument('--onnx', required=True, metavar='OUT.onnx', help='ONNX file to write')
    parser.add_argument('--opset', type=_opset, default=MIN_OPSET, help=f'ONNX opset (default: {MIN_OPSET})')
    parser.add_argument('--img-range', type=positive_float, default=None,
                        help='pixel range the network was trained in (default: 1, as the released models)')
    parser.add_argument('--no-verify', action='store_true', help='skip the onnxruntime comparison')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing ONNX file')
    return parser


def main(argv: list[str] | None = None, prog: str = 'hat-sr export') -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    return report_user_errors(lambda: _run(args, prog), prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    from hat_arch.checkpoint import describe, load_model

    if importlib.util.find_spec('onnx') is None:
        raise HatError("ONNX export needs the onnx package: pip install 'hat_arch[onnx]'")
    target = Path(args.onnx)
    if target.is_dir():
        raise HatError(f'{target} is a folder; name the ONNX file to write, e.g. {target / "model.onnx"}')
    if target.exists() and not args.overwrite:
        raise HatError(f'{target} exists; pass --overwrite to replace it')
    check_writable_folder(target.parent)
    overrides = {} if args.img_range is None else {'img_range': args.img_range}
    stages = 2 if args.no_verify else 3
    with tqdm(total=stages, unit='stage', file=sys.stderr, bar_format='{desc} [{n}/{total} stages, {elapsed}]') as bar:
        bar.set_description_str('export: loading the checkpoint')
        model = load_model(checkpoint_or_shipped(args.model, announce=lambda note: bar.write(f'{prog}: {note}')),
                           device='cpu', **overrides)
        if first_non_finite_weight(model) is not None:  # also with --no-verify: an ONNX model that outputs NaN
            raise NonFiniteOutput(non_finite_message(model))
        bar.update()
        bar.set_description_str('export: tracing to ONNX (minutes for a full-size HAT)')
        onnx_model = export_onnx(model, args.opset)
        bar.update()
        if args.no_verify:
            bar.write('not verified (--no-verify)')
        else:
            bar.set_description_str('export: comparing onnxruntime with PyTorch')
            difference = verify_onnx(model, onnx_model)
            bar.update()
            if difference is None:
                bar.write("not verified: onnxruntime is not installed (pip install 'hat_arch[onnx]')")
            else:
                bar.write(f'verified: max |onnxruntime - torch| = {difference:.2e} over several sizes')
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, onnx_model)
        bar.set_description_str('export: done')
    info = describe(model)
    print(f'wrote {target} ({target.stat().st_size / 2**20:.1f} MiB): input (b, {info.in_chans}, h, w) in [0, 1], '
          f'{"RGB" if info.in_chans == 3 else "channels as trained"}; output (b, {info.in_chans}, '
          f'{info.scale}h, {info.scale}w)')
    return 0
