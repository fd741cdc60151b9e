"""hat-sr serve under load, on loopback: several clients at once all get their result, one run at a time (from the
server's log of each run's start and end), and the server's memory stays bounded; stopping it removes its temporary
folder."""
from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from tests.web.conftest import SET5, start_server

pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install '.[web]'")
gradio_client = pytest.importorskip('gradio_client')
pytestmark = pytest.mark.slow

CLIENTS = 4
DEADLINE_SECONDS = 150
# The server's memory grows by about one request's working memory, however many wait (no upload or result kept in
# memory). Four tiny runs at once would fit in it too: one at a time is checked from the log.
RSS_GROWTH_LIMIT = 256 * 2**20
RUN_LINE = re.compile(r'^hat-sr serve: run (\d+) (started|ended)')


def upscale_as_a_new_client(url: str, model: str, image, folder) -> tuple[str, str]:
    client = gradio_client.Client(url, verbose=False, download_files=str(folder))
    # Tiles of 64 pixels: 4 per image, so the per-tile progress runs too.
    status, _, _, files, *_ = client.predict([gradio_client.handle_file(str(image))], model, '64', 'fp32', False,
                                            api_name='/upscale')
    return status, files[0]


def run_log(server, lines: int, seconds: float = 10) -> list[tuple[str, str]]:
    """(run number, 'started' or 'ended') from the server's log, once it holds ``lines`` of them (its last line may
    still be on its way through the pipe) or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        runs = [match.groups() for match in map(RUN_LINE.match, server.log) if match]
        if len(runs) >= lines or time.monotonic() > deadline:
            return runs
        time.sleep(0.05)


def test_concurrent_clients_all_finish_with_bounded_memory_and_the_folder_goes_on_exit(checkpoint, tmp_path):
    server = start_server(checkpoint, '--queue-size', str(CLIENTS))
    model = (f'{checkpoint.name}: HAT x4 (pixelshuffle): 3 channels, width 24, 2 x 2 blocks, window 8, '
             '0.37 M parameters')
    image = SET5 / 'baby.png'
    try:
        assert server.workspace.is_dir()
        upscale_as_a_new_client(server.url, model, image, tmp_path / 'warm')  # model loaded, code paths warm
        idle = server.rss_bytes()
        peak = [idle]
        done = threading.Event()

        def watch_memory() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], server.rss_bytes())

        watcher = threading.Thread(target=watch_memory)
        watcher.start()
        start = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            runs = [pool.submit(upscale_as_a_new_client, server.url, model, image, tmp_path / f'client{i}')
                    for i in range(CLIENTS)]
            results = [run.result(timeout=DEADLINE_SECONDS) for run in runs]
        seconds = time.perf_counter() - start
        done.set()
        watcher.join()
        print(f'{CLIENTS} clients: {seconds:.1f} s; server RSS {idle / 2**20:.0f} MiB idle, '
              f'{peak[0] / 2**20:.0f} MiB peak (shared, loaded machine)')

        first = cv2.imread(results[0][1], cv2.IMREAD_UNCHANGED)
        assert first.shape == (512, 512, 3)
        for status, output in results:
            assert status == 'Upscaled 1 image(s).'
            np.testing.assert_array_equal(cv2.imread(output, cv2.IMREAD_UNCHANGED), first)
        runs = run_log(server, 2 * (CLIENTS + 1))
        # One at a time: each run ends before the next starts (the warm-up's run, then the clients').
        assert runs == [(str(n), event) for n in range(1, CLIENTS + 2) for event in ('started', 'ended')], runs
        assert peak[0] - idle < RSS_GROWTH_LIMIT
        assert server.process.poll() is None
    finally:
        code = server.stop()
    assert code == 0
    assert not server.workspace.exists()
