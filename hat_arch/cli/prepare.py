"""``basicsr prepare``: make the training and benchmark folders the recipes under ``options/`` expect.

    basicsr prepare df2k datasets/DF2K              # DF2K_HR/ -> DF2K_HR_sub/, DF2K_bicx{2,3,4}_sub/, meta-info file
    basicsr prepare crop SRC DST --crop-size 480 --step 240 [--scale 4 --modcrop 12]
    basicsr prepare bicubic SRC DST --scale 4        # MATLAB-style bicubic LR images
    basicsr prepare benchmark SRC DST --scales 2 3 4 # DST/GTmod{s}/ and DST/LRbicx{s}/
    basicsr prepare meta-info FOLDER FILE [--recursive]

An image that cannot be processed (unreadable, too large for memory, too small for the scale) is reported by name,
the others are processed, and the run exits with 1; a second run keeps the outputs that exist and makes the rest.
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from hat_arch.cli.arguments import add_max_pixels, non_negative_int, positive_int
from hat_arch.data.prepare import SCALES, Report, bicubic, crop, df2k, meta_info, meta_info_file
from hat_arch.errors import report_user_errors

def _add_common(parser: argparse.ArgumentParser, images: bool = True) -> None:
    """--workers and --overwrite; for the commands that decode images (``images``), also --max-pixels."""
    parser.add_argument('--workers', type=positive_int, default=os.cpu_count() or 1,
                        help='processes (default: all cores)')
    if not images:
        parser.add_argument('--overwrite', action='store_true', help='replace the file if it exists')
        return
    parser.add_argument('--overwrite', action='store_true',
                        help='replace outputs that exist (default: keep them, and make only the missing ones)')
    add_max_pixels(parser)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description='Prepare super-resolution datasets for BasicSR.')
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

    p = sub.add_parser('df2k', help='sub-images and bicubic LR sub-images of DF2K (or DIV2K), plus meta-info',
                       description='From ROOT/DF2K_HR/ (DIV2K train + Flickr2K HR images) make ROOT/DF2K_HR_sub/ '
                       '(480x480 every 240), ROOT/DF2K_bicx{s}_sub/ (their MATLAB-bicubic LR, paired by name) and '
                       'ROOT/meta_info_DF2Ksub_GT.txt: the layout of options/train/*DF2K* recipes.')
    p.add_argument('root', help='folder holding DF2K_HR/')
    p.add_argument('--hr', default='DF2K_HR', help='HR folder name under ROOT (default: DF2K_HR)')
    p.add_argument('--prefix', default='DF2K', help='prefix of the folders and meta-info file made (default: DF2K)')
    p.add_argument('--scales', type=positive_int, nargs='+', default=list(SCALES), help='LR scales (default: 2 3 4)')
    p.add_argument('--crop-size', type=positive_int, default=480)
    p.add_argument('--step', type=positive_int, default=240)
    _add_common(p)

    p = sub.add_parser('crop', help='cut large images into sub-images (BasicSR extract_subimages)')
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--crop-size', type=positive_int, default=480, help='sub-image side in HR pixels (default: 480)')
    p.add_argument('--step', type=positive_int, default=240, help='stride in HR pixels (default: 240)')
    p.add_argument('--thresh-size', type=non_negative_int, default=0,
                   help='add a last row/column flush with the border if more than this is left (default: 0)')
    p.add_argument('--scale', type=positive_int, default=1,
                   help='cut the MATLAB-bicubic x1/SCALE of each image instead (crop and step divided by SCALE)')
    p.add_argument('--modcrop', type=positive_int, default=1,
                   help='first crop each image to a multiple of this; use the same value (a multiple of every '
                   'scale) for HR and LR so their sub-images pair up')
    _add_common(p)

    p = sub.add_parser('bicubic', help='MATLAB-style bicubic downscaling (basicsr imresize) of a folder')
    p.add_argument('src')
    p.add_argument('dst')
    p.add_argument('--scale', type=positive_int, required=True)
    _add_common(p)

    p = sub.add_parser('benchmark', help='GTmod{s}/ and LRbicx{s}/ folders of a benchmark set (Set5, Urban100, ...)')
    p.add_argument('src', help='folder of HR images')
    p.add_argument('dst', help='folder to hold GTmod{s}/ and LRbicx{s}/')
    p.add_argument('--scales', type=positive_int, nargs='+', default=list(SCALES))
    _add_common(p)

    p = sub.add_parser('meta-info', help='a BasicSR meta-info file: one "NAME (h,w,c)" line per image')
    p.add_argument('folder')
    p.add_argument('file')
    p.add_argument('--recursive', action='store_true', help='include sub-folders (ImageNet: one per class)')
    _add_common(p, images=False)
    return parser


def main(argv: list[str] | None = None, prog: str = 'basicsr prepare') -> int:
    args = build_parser(prog).parse_args(argv)
    return report_user_errors(lambda: _run(args, prog), prog)


def _run(args: argparse.Namespace, prog: str) -> int:
    if args.command == 'meta-info':
        count = meta_info(args.folder, args.file, args.recursive, args.workers, args.overwrite)
        print(f'{count} images listed in {args.file}')
        return 0
    common = dict(workers=args.workers, overwrite=args.overwrite, max_pixels=args.max_pixels)
    if args.command == 'df2k':
        reports = df2k(args.root, args.hr, args.prefix, args.scales, args.crop_size, args.step, **common)
        status = max(_print_report(report, folder, 'sub-images', prog, args.crop_size)
                     for folder, report in reports.items())
        if status:
            print(f'{prog}: {meta_info_file(args.root, args.prefix)} not written: run again once every image gives '
                  'its sub-images', file=sys.stderr)
        return status
    if args.command == 'crop':
        report = crop(args.src, args.dst, args.crop_size, args.step, args.thresh_size, args.scale, args.modcrop,
                      **common)
        return _print_report(report, args.dst, 'sub-images', prog, args.crop_size)
    if args.command == 'bicubic':
        return _print_report(bicubic(args.src, args.dst, args.scale, **common), args.dst, 'images', prog)
    status = 0  # benchmark
    for scale in args.scales:
        report = bicubic(args.src, osp.join(args.dst, f'LRbicx{scale}'), scale, osp.join(args.dst, f'GTmod{scale}'),
                         **common)
        status = max(status, _print_report(report, args.dst, f'x{scale} images', prog))
    return status


def _print_report(report: Report, dst: str, what: str, prog: str, crop_size: int | None = None) -> int:
    """Each failure as an error line, then one summary line; 1 if any image failed, else 0."""
    for failure in report.failures:
        print(f'{prog}: error: {failure}', file=sys.stderr)
    if report.no_output:
        print(f'{len(report.no_output)} image(s) smaller than the crop size {crop_size} gave no sub-image: '
              + ', '.join(report.no_output), file=sys.stderr)
    summary = f'{report.written} {what} written in {dst}'
    if report.skipped:
        summary += f', {report.skipped} image(s) skipped (outputs exist; --overwrite to replace them)'
    if report.failures:
        summary += f', {len(report.failures)} image(s) failed'
    print(summary)
    return 1 if report.failures else 0


if __name__ == '__main__':
    sys.exit(main())
