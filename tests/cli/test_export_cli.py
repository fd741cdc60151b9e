"""hat-sr export: an ONNX model of any height and width that onnxruntime runs like PyTorch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hat_arch import HatError
from hat_arch.checkpoint import load_model
from hat_arch.cli import hat_sr_main
from hat_arch.onnx_export import MAX_OPSET, verify_onnx
from tests.conftest import load_golden

onnxruntime = pytest.importorskip('onnxruntime')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp('export')
    torch.save({'params_ema': load_golden('tiny_x3')['params']}, folder / 'tiny_x3.pth')
    code = hat_sr_main(['export', '-m', str(folder / 'tiny_x3.pth'), '--onnx', str(folder / 'tiny_x3.onnx')])
    return code, folder


def test_export_runs_any_size_like_pytorch(exported, capsys):
    code, folder = exported
    assert code == 0
    assert sorted(p.name for p in folder.iterdir()) == ['tiny_x3.onnx', 'tiny_x3.pth']  # no partial file left
    session = onnxruntime.InferenceSession(str(folder / 'tiny_x3.onnx'), providers=['CPUExecutionProvider'])
    model = load_model(folder / 'tiny_x3.pth', device='cpu')
    for shape in [(1, 3, 11, 30), (3, 3, 8, 8), (1, 3, 1, 2)]:  # sizes the export never saw; a batch of 3
        x = torch.rand(shape)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {'input': x.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_verification_catches_a_different_network(exported):
    _, folder = exported
    model = load_model(folder / 'tiny_x3.pth', device='cpu')
    onnx_model = (folder / 'tiny_x3.onnx').read_bytes()
    assert verify_onnx(model, onnx_model) <= 1e-3
    with torch.no_grad():
        model.conv_last.bias += 0.01
    with pytest.raises(HatError, match='differs from PyTorch by 1.0.e-02'):
        verify_onnx(model, onnx_model)


def test_an_existing_file_is_not_replaced(exported, capsys):
    _, folder = exported
    before = (folder / 'tiny_x3.onnx').read_bytes()
    code = hat_sr_main(['export', '-m', str(folder / 'tiny_x3.pth'), '--onnx', str(folder / 'tiny_x3.onnx')])
    assert code == 2 and 'exists' in capsys.readouterr().err
    assert (folder / 'tiny_x3.onnx').read_bytes() == before


def test_a_folder_as_the_onnx_file_is_refused_before_any_work(exported, capsys):
    # With --overwrite it exported, then failed to rename the file over the folder: IsADirectoryError.
    _, folder = exported
    (folder / 'out').mkdir()
    code = hat_sr_main(['export', '-m', str(folder / 'tiny_x3.pth'), '--onnx', str(folder / 'out'), '--overwrite'])
    assert code == 2
    assert capsys.readouterr().err == (f'hat-sr export: error: {folder / "out"} is a folder; name the ONNX file to '
                                       f'write, e.g. {folder / "out" / "model.onnx"}\n')


@pytest.mark.parametrize('opset', ['16', str(MAX_OPSET + 1)])
def test_opsets_the_exporter_cannot_write_are_refused(exported, capsys, opset):
    # One past the exporter's newest (99 was tried) failed after the exporter had printed its whole graph.
    _, folder = exported
    with pytest.raises(SystemExit):
        hat_sr_main(['export', '-m', str(folder / 'tiny_x3.pth'), '--onnx', str(folder / 'x.onnx'), '--opset', opset])
    assert f"expected an ONNX opset from 17 to {MAX_OPSET}, got '{opset}'" in capsys.readouterr().err


def test_a_model_on_the_sdpa_path_exports_as_it_is(tmp_path):
    # Traced for ONNX, HAT takes its naive path by itself (the sdpa path's autograd functions do not export).
    from hat_arch import HAT
    from hat_arch.onnx_export import export_onnx

    case = load_golden('tiny_x3')
    model = HAT(**case['config']).eval()
    model.load_state_dict(case['params'])
    onnx_model = export_onnx(model)
    assert model.attn_impl == 'sdpa'
    assert verify_onnx(model, onnx_model) < 1e-4


def test_export_shows_its_stages(tmp_path, capsys):
    torch.save({'params_ema': load_golden('tiny_x3')['params']}, tmp_path / 'tiny_x3.pth')
    target = tmp_path / 'new' / 'tiny_x3.onnx'  # its folder is made, as hat-sr upscale's -o
    assert hat_sr_main(['export', '-m', str(tmp_path / 'tiny_x3.pth'), '--onnx', str(target), '--no-verify']) == 0
    assert [p.name for p in target.parent.iterdir()] == ['tiny_x3.onnx']
    err = capsys.readouterr().err
    assert 'export: loading the checkpoint [0/2 stages' in err
    assert 'export: tracing to ONNX (minutes for a full-size HAT) [1/2 stages' in err
    assert 'export: done [2/2 stages' in err


def test_an_unwritable_folder_is_named_with_the_reason_before_any_work(tmp_path, capsys):
    (tmp_path / 'file').write_text('x')
    code = hat_sr_main(['export', '-m', str(tmp_path / 'missing.pth'), '--onnx', str(tmp_path / 'file' / 'x.onnx')])
    assert code == 2  # it said 'does not exist or is not writable', whichever it was
    assert capsys.readouterr().err == (f'hat-sr export: error: cannot write to output folder {tmp_path / "file"}: '
                                       'Not a directory\n')
