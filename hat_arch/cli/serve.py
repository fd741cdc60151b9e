"""``hat-sr serve``: the upscaling web page (:mod:`hat_arch.web`) on this machine, at 127.0.0.1 unless asked otherwise.

Checks that need no network (checkpoints, the web extra) are done before anything is served; the temporary folder
of uploads and results is removed when the server stops (Ctrl+C or SIGTERM).
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import sys

from hat_arch.cli.arguments import add_max_pixels, positive_float, positive_int
from hat_arch.errors import HatError, report_user_errors
from hat_arch.shipped_model import SHIPPED_MODEL_NAME, checkpoint_or_shipped

LOOPBACK = '127.0.0.1'


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description='Serve a web page that upscales images with HAT checkpoints, on this machine. '
        "Needs the web extra: pip install 'hat_arch[web]'.")
    parser.add_argument('-m', '--model', metavar='CHECKPOINT|FOLDER',
                        help="a HAT checkpoint, a built-in model's name, or a folder whose checkpoints are all offered "
                        f'(default: the built-in {SHIPPED_MODEL_NAME}, x4)')
    parser.add_argument('--host', default=LOOPBACK,
                        help=f'address to listen on (default: {LOOPBACK}, this machine only; 0.0.0.0 serves the '
                        'network, with no login)')
    parser.add_argument('--port', type=positive_int, default=7860, help='port (default: 7860)')
    parser.add_argument('--device', default='auto', help="'auto' (CUDA when available), 'cpu', 'cuda:1', ...")
    parser.add_argument('--max-upload-mb', type=positive_float, default=50.0,
                        help='largest file accepted, in MiB (default: 50)')
    parser.add_argument('--queue-size', type=positive_int, default=32,
                        help='requests that may wait for the model; more are refused (default: 32)')
    add_max_pixels(parser)
    return parser


def main(argv: list[str] | None = None, prog: str = 'hat-sr serve') -> int:
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    return report_user_errors(lambda: _serve(args, prog), prog)


def _serve(args: argparse.Namespace, prog: str) -> int:
    from hat_arch.checkpoint import resolve_device
    from hat_arch.web.catalogue import ModelCache, find_checkpoints
    from hat_arch.web.workspace import Workspace

    checkpoints = find_checkpoints(checkpoint_or_shipped(args.model, announce=lambda note: print(
        f'{prog}: {note}', file=sys.stderr)))
    resolve_device(args.device)  # an unknown or absent device is refused now, not at the first request
    if not _is_loopback(args.host):
        print(f'{prog}: warning: listening on {args.host}: anyone who can reach this machine can use the page '
              'and its CPU/GPU (no login)', file=sys.stderr)
    workspace = Workspace(max_upload_bytes=int(args.max_upload_mb * 2**20))
    # Gradio keeps uploads in GRADIO_TEMP_DIR, read when it handles them: inside the workspace, removed with it.
    os.environ['GRADIO_TEMP_DIR'] = str(workspace.uploads)
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    try:
        try:
            from hat_arch.web.app import PAGE_CSS, build_app, theme
        except ImportError as error:
            raise HatError(f"the web page needs the web extra ({error.name} is missing): "
                           "pip install 'hat_arch[web]'") from None
        app = build_app(checkpoints, ModelCache(args.device), workspace, args.max_pixels,
                        log=lambda line: print(f'{prog}: {line}', file=sys.stderr, flush=True))
        app.queue(max_size=args.queue_size, default_concurrency_limit=1)
        signal.signal(signal.SIGTERM, _stop)
        print(f'{prog}: {len(checkpoints)} model(s); uploads and results in {workspace.root} (removed on exit)',
              file=sys.stderr)
        try:
            app.launch(server_name=args.host, server_port=args.port, max_file_size=int(args.max_upload_mb * 2**20),
                       theme=theme(), css=PAGE_CSS, quiet=True, prevent_thread_lock=True,
                       ssr_mode=False, run_history=False,  # no Node.js renderer; no run history kept
                       show_error=False)  # an error no handler turned into a page message shows no text
        except OSError:  # Gradio's message names its own settings; ours names the options
            raise HatError(f'cannot listen on {args.host}:{args.port}: the port is taken or the address is not one '
                           'of this machine (--host, --port)') from None
        print(f'{prog}: serving on http://{_url_host(args.host)}:{args.port} (Ctrl+C stops)', file=sys.stderr,
              flush=True)
        app.block_thread()
    finally:
        workspace.cleanup()
    return 0


def _stop(signum: int, frame) -> None:
    raise KeyboardInterrupt  # Gradio's block_thread closes the server on it; the workspace goes after


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == 'localhost'


def _url_host(host: str) -> str:
    return f'[{host}]' if ':' in host else host
