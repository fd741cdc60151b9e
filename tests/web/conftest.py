"""A ``hat-sr serve`` subprocess on a free loopback port, with a tiny checkpoint in the released format."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT, load_golden

SET5 = ROOT / 'datasets' / 'Set5' / 'LRbicx4'
HAT_SR = Path(sys.executable).with_name('hat-sr')
# One thread for the servers and for the hat-sr upscale runs they are compared with: same sums, same pixels.
ENV = {**os.environ, 'OMP_NUM_THREADS': '1'}
START_SECONDS = 240  # a loaded shared machine takes minutes to import torch and gradio


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    workspace: Path
    log: list[str] = field(default_factory=list)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)  # minutes, on a loaded shared machine

    def rss_bytes(self) -> int:
        """The server's resident memory now, from /proc."""
        status = Path(f'/proc/{self.process.pid}/status').read_text()
        return int(re.search(r'VmRSS:\s+(\d+) kB', status).group(1)) * 1024


@pytest.fixture(scope='session')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('ckpt') / 'tiny_x4.pth'
    torch.save({'params_ema': load_golden('tiny_x4')['params']}, path)  # as the reference code saves
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def start_server(checkpoint: Path | None, *options: str) -> Server:
    """``hat-sr serve -m checkpoint`` (no ``-m`` for None) on a free loopback port, once it says it is serving."""
    port = free_port()
    model = [] if checkpoint is None else ['-m', str(checkpoint)]
    process = subprocess.Popen([str(HAT_SR), 'serve', *model, '--port', str(port), *options],
                               stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV)
    log: list[str] = []
    ready = threading.Event()

    def read_log() -> None:  # keeps the pipe drained for the server's whole life
        for line in process.stderr:
            log.append(line)
            if 'serving on' in line:
                ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    deadline = time.monotonic() + START_SECONDS
    while not ready.wait(0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f'hat-sr serve did not start (exit status {process.poll()}):\n{"".join(log)}')
    workspace = next(re.search(r'results in (\S+) ', line).group(1) for line in log if 'results in' in line)
    return Server(process, f'http://127.0.0.1:{port}/', Path(workspace), log)


def upscale_with_cli(checkpoint: Path, images: list[Path], out_dir: Path) -> None:
    """``hat-sr upscale`` on ``images`` into ``out_dir``, as a user runs it (its default names)."""
    subprocess.run([str(HAT_SR), 'upscale', *map(str, images), '-o', str(out_dir), '-m', str(checkpoint)],
                   check=True, env=ENV, capture_output=True, timeout=300)
