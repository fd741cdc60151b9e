"""LAM's cost is judged from the image's header before decoding, with an estimate measured to be an upper bound of
its peak memory; running out of memory anyway is one line."""
from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hat_arch import HAT, attribution, image_memory
from hat_arch.checkpoint import describe
from hat_arch.cli import hat_sr_main
from hat_arch.errors import HatError
from hat_arch.image_io import ImageHeader, read_header
from tests.conftest import TINY_HAT
from tests.memory import GIB, run_measured
from tests.test_image_memory import write_black_png


def write_huge_tiff(path: Path, width: int, height: int) -> Path:
    """A 16-bit gray TIFF whose header declares ``width`` x ``height`` pixels, with one strip of a few bytes."""
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8 + 2 + 12 * 9 + 4), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack('<H', len(entries)) + b''.join(
        struct.pack('<HHII' if kind == 4 else '<HHIHxx', tag, kind, count, value)
        for tag, kind, count, value in entries) + struct.pack('<I', 0)
    path.write_bytes(b'II*\x00' + struct.pack('<I', 8) + ifd + bytes(16))
    return path


@pytest.fixture(scope='module')
def model() -> HAT:
    return HAT(**TINY_HAT).eval()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('model') / 'tiny.pth'
    torch.save({'params': HAT(**TINY_HAT).state_dict()}, path)
    return path


def test_the_tiff_maker_declares_its_size_to_pillow(tmp_path):
    header = read_header(write_huge_tiff(tmp_path / 'huge.tif', 27000, 27000))
    assert (header.width, header.height, header.sample_bytes) == (27000, 27000, 2)


def test_the_estimate_grows_with_the_image_the_batch_and_the_network(model, small_png):
    info = describe(model)
    small, large = ImageHeader(64, 64, 'RGB', 3), ImageHeader(256, 256, 'RGB', 3)
    assert attribution.lam_bytes(large, info) > 10 * attribution.lam_bytes(small, info) / 2
    assert attribution.lam_bytes(small, info, batch_size=4) > attribution.lam_bytes(small, info)
    wide = describe(HAT(**{**TINY_HAT, 'embed_dim': 96, 'num_heads': [4, 4]}))
    assert attribution.lam_bytes(small, wide) > attribution.lam_bytes(small, info)
    assert attribution.check_lam_image(small_png, wide) is not None


@pytest.fixture
def small_png(tmp_path) -> Path:
    path = tmp_path / 'small.png'
    cv2.imwrite(str(path), np.zeros((16, 16, 3), np.uint8))
    return path


@pytest.mark.parametrize('maker, name', [(write_huge_tiff, 'huge.tif'), (write_black_png, 'huge.png')])
def test_an_image_too_large_for_lam_is_refused_from_its_header(tmp_path, model, monkeypatch, maker, name):
    image = maker(tmp_path / name, 27000 if name.endswith('tif') else 20000, 27000 if name.endswith('tif') else 20000)
    monkeypatch.setattr(image_memory, 'available_memory', lambda: 24 * GIB)
    decoded = []
    monkeypatch.setattr(attribution, 'read_image', lambda path: decoded.append(path))
    with pytest.raises(HatError) as refused:
        attribution.lam_file(model, image, (0, 0, 4, 4))
    assert str(refused.value).startswith(f'{image}: ') and 'to attribute x4; 12.0 GiB can be spared' in \
        str(refused.value)
    assert not decoded


def test_a_1024_image_is_estimated_beyond_what_the_old_estimate_said(model):
    # main estimated about 1.1 GiB for 1024x1024; the page's run peaked at 7.6 GB with a tiny x4 model
    assert attribution.lam_bytes(ImageHeader(1024, 1024, 'RGB', 3), describe(model)) > 7.6e9


def test_running_out_of_memory_anyway_is_one_line(tmp_path, checkpoint, monkeypatch, capsys, small_png):
    image = small_png
    (tmp_path / 'out').mkdir()

    def exhausted(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] data. DefaultCPUAllocator: can't allocate memory: you "
                           'tried to allocate 27487790694400 bytes. Error code 12 (Cannot allocate memory)')

    monkeypatch.setattr(attribution, 'lam', exhausted)
    code = hat_sr_main(['lam', '-m', str(checkpoint), '-i', str(image), '--box', '0,0,4,4',
                        '-o', str(tmp_path / 'out')])
    err = capsys.readouterr().err.strip().replace('\r', '\n').splitlines()[-1]
    assert code == 2 and err.startswith(f'hat-sr lam: error: {image}: LAM ran out of memory ([enforce fail')
    assert err.endswith('use a smaller image or a crop around the box, and --batch-size 1')
    assert not list((tmp_path / 'out').iterdir())


def test_the_page_preview_checks_the_header_before_decoding(tmp_path, model, monkeypatch):
    from hat_arch.web import app
    from hat_arch.web.workspace import Workspace

    monkeypatch.setattr(image_memory, 'available_memory', lambda: 24 * GIB)
    monkeypatch.setattr(app, 'read_image', lambda path: pytest.fail('decoded'))
    workspace = Workspace(max_upload_bytes=2**20)
    try:
        preview = app._aim_handlers({'m': describe(model)}, workspace, None)[0]
        with pytest.raises(Exception, match=r'huge\.tif: 27000x27000 pixels would take about .* to attribute x4'):
            preview(str(write_huge_tiff(workspace.uploads / 'huge.tif', 27000, 27000)), 'm', 0, 0, 16, None)
    finally:
        workspace.cleanup()


@pytest.mark.slow
@pytest.mark.parametrize('side, batch', [(64, 1), (96, 2)])
def test_the_estimate_is_an_upper_bound_of_the_measured_peak(tmp_path, checkpoint, side, batch):
    image = tmp_path / 'in.png'
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8))
    child = ('import sys, hat_arch\n'
             'from hat_arch import attribution\n'
             'from hat_arch.checkpoint import describe\n'
             'from hat_arch.image_io import read_header\n'
             'model = hat_arch.load_model(sys.argv[1], device="cpu")\n'
             'batch = int(sys.argv[3])\n'
             'estimate = attribution.lam_bytes(read_header(sys.argv[2]), describe(model), batch)\n'
             'open("/proc/self/clear_refs", "w").write("5")\n'  # the peak (VmHWM) counts from here, not the imports
             'start = int(open("/proc/self/statm").read().split()[1]) * 4096\n'
             'attribution.lam_file(model, sys.argv[2], (0, 0, 4, 4), steps=2 * batch, batch_size=batch)\n'
             'print(start, estimate)\n')
    run = run_measured(['-c', child, checkpoint, image, batch], timeout=300)
    assert run.returncode == 0, run.stderr
    start, estimate = map(int, run.stdout.split())
    used = run.peak_rss - start
    print(f'{side}x{side}, batch {batch}: LAM took {used / 2**20:.0f} MiB at its peak, '
          f'estimated {estimate / 2**20:.0f} MiB ({run.seconds:.0f} s)')
    assert used <= estimate
    assert used < 1.5 * GIB
