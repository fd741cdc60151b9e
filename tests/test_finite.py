"""Only finite results: a checkpoint with NaN or inf weights fails in one line naming it (upscale, the API, export,
LAM) instead of writing a black image; an fp16 overflow is redone in fp32, said once."""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import hat_arch
from hat_arch.cli import hat_sr_main
from hat_arch.finite import NonFiniteOutput, all_finite
from tests.conftest import DATA, load_golden

HEAD = DATA / 'Set5' / 'LRbicx4' / 'head.png'


def checkpoint_with(folder: Path, name: str, **values: float) -> Path:
    """The tiny x4 checkpoint with the named tensors filled with a value (``conv_first__weight=nan``)."""
    params = dict(load_golden('tiny_x4')['params'])
    for key, value in values.items():
        key = key.replace('__', '.')
        params[key] = torch.full_like(params[key], value)
    path = folder / name
    torch.save({'params_ema': params}, path)
    return path


@pytest.fixture(scope='module')
def small_image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp('images') / 'head.png'
    cv2.imwrite(str(path), cv2.resize(cv2.imread(str(HEAD)), (24, 20), interpolation=cv2.INTER_AREA))
    return path


def test_upscale_refuses_to_write_what_nan_weights_give(tmp_path, small_image, capsys):
    # It wrote an all-black image and exited 0.
    bad = checkpoint_with(tmp_path, 'nan.pth', conv_first__weight=math.nan)
    code = hat_sr_main(['upscale', str(small_image), '-o', str(tmp_path / 'out'), '-m', str(bad)])
    err = capsys.readouterr().err
    assert code == 1
    assert (f'hat-sr upscale: error: {small_image}: checkpoint {bad} gives non-finite values (NaN or inf): its '
            'weight conv_first.weight holds NaN or inf\n') in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('precision', ['fp32', 'fp16'])
def test_the_api_raises_for_inf_weights_in_any_precision(tmp_path, precision):
    bad = checkpoint_with(tmp_path, 'inf.pth', conv_last__bias=math.inf)
    model = hat_arch.load_model(bad, device='cpu', precision=precision)
    with pytest.raises(NonFiniteOutput, match=rf'^checkpoint {bad} gives non-finite values \(NaN or inf\): its '
                       r'weight conv_last.bias holds NaN or inf$'):
        hat_arch.upscale(model, np.zeros((12, 10, 3), np.uint8), tile=8)


def test_finite_weights_that_overflow_fp32_are_named_as_such(tmp_path):
    bad = checkpoint_with(tmp_path, 'huge.pth', conv_before_upsample__0__bias=1e30, upsample__0__weight=1e30)
    model = hat_arch.load_model(bad, device='cpu')
    with pytest.raises(NonFiniteOutput, match='its weights are finite, they overflow in fp32$'):
        hat_arch.upscale(model, np.zeros((8, 8, 3), np.uint8))


def test_an_fp16_overflow_is_redone_in_fp32_and_said_once(tmp_path):
    # Finite in fp16 (60000 < 65504), but the sums of the upsampling conv pass 65504: inf, then NaN, in fp16.
    loud = checkpoint_with(tmp_path, 'loud.pth', conv_before_upsample__0__bias=6e4, upsample__0__weight=1.0)
    image = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    fp32 = hat_arch.upscale(hat_arch.load_model(loud, device='cpu'), image, tile=8, tile_pad=4)
    model = hat_arch.load_model(loud, device='cpu', precision='fp16')
    with torch.no_grad():
        assert not torch.isfinite(model(torch.rand(1, 3, 8, 8, dtype=torch.float16))).all()  # it does overflow
    notes = []
    for _ in range(2):  # two images, several tiles each: one note
        fp16 = hat_arch.upscale(model, image, tile=8, tile_pad=4, warn=notes.append)
        np.testing.assert_array_equal(fp16, fp32)
    assert notes == [(f'warning: fp16 overflowed (NaN or inf) on some tiles of checkpoint {loud}; those tiles are '
                      'redone in fp32')]


def test_the_fp16_note_is_a_warning_without_a_callback(tmp_path):
    loud = checkpoint_with(tmp_path, 'loud.pth', conv_before_upsample__0__bias=6e4, upsample__0__weight=1.0)
    model = hat_arch.load_model(loud, device='cpu', precision='fp16')
    with pytest.warns(RuntimeWarning, match='fp16 overflowed'):
        hat_arch.upscale(model, np.zeros((8, 8, 3), np.uint8))


def test_export_refuses_nan_weights_even_unverified(tmp_path, capsys):
    pytest.importorskip('onnx')
    bad = checkpoint_with(tmp_path, 'nan.pth', layers__0__residual_group__blocks__0__norm1__weight=math.nan)
    code = hat_sr_main(['export', '-m', str(bad), '--onnx', str(tmp_path / 'x.onnx'), '--no-verify'])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f'hat-sr export: error: checkpoint {bad} gives non-finite values (NaN or inf): its weight '
        'layers.0.residual_group.blocks.0.norm1.weight holds NaN or inf')
    assert not (tmp_path / 'x.onnx').exists()


def test_verification_fails_on_any_non_finite_difference(tmp_path):
    # NaN > tolerance is False: a NaN network was reported as 'verified: max |onnxruntime - torch| = 0.00e+00'.
    pytest.importorskip('onnxruntime')
    from hat_arch.onnx_export import export_onnx, verify_onnx

    model = hat_arch.load_model(checkpoint_with(tmp_path, 'ok.pth'), device='cpu', attn_impl='naive')
    onnx_model = export_onnx(model)
    with torch.no_grad():
        model.conv_last.bias[0] = math.nan
    with pytest.raises(hat_arch.HatError, match=r'^verification failed: PyTorch gives non-finite values \(NaN or '
                       r'inf\) on input \(1, 3, 16, 8\)'):
        verify_onnx(model, onnx_model)


def test_lam_refuses_nan_weights_instead_of_an_undefined_di(tmp_path, small_image, capsys):
    bad = checkpoint_with(tmp_path, 'nan.pth', conv_last__weight=math.nan)
    code = hat_sr_main(['lam', '-m', str(bad), '-i', str(small_image), '--box', '0,0,8,8', '--steps', '2',
                        '-o', str(tmp_path / 'l.png')])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f'hat-sr lam: error: checkpoint {bad} gives non-finite values (NaN or inf): its weight conv_last.weight '
        'holds NaN or inf')
    assert list(tmp_path.glob('l.*')) == []


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16, torch.bfloat16])
def test_the_finiteness_check_is_exact(dtype):
    values = torch.rand(3, 16, 16).to(dtype)
    assert all_finite(values)
    for bad in (math.nan, math.inf, -math.inf):
        with_bad = values.clone()
        with_bad[2, 15, 15] = bad
        assert not all_finite(with_bad)
    huge = torch.full((3, 16, 16), torch.finfo(dtype).max, dtype=dtype)
    assert all_finite(huge)  # its sum overflows; its values do not
    both = huge.clone()
    both[0, 0, 0] = -math.inf
    assert not all_finite(both)
