"""ONNX export of a HAT and its check against PyTorch with onnxruntime (the ``onnx`` extra)."""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch

from hat_arch.archs.hat_arch import HAT
from hat_arch.checkpoint import describe
from hat_arch.errors import HatError, first_line

MIN_OPSET = 17
# The newest opset of the TorchScript exporter (torch keeps the constant private; without it, no upper bound): a
# later one failed after the exporter had printed its whole graph, hundreds of lines.
MAX_OPSET = getattr(torch.onnx._constants, 'ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET', 10**6)
TOLERANCE = 1e-3


def export_onnx(model: HAT, opset: int = MIN_OPSET) -> bytes:
    """``model`` traced into an ONNX model with dynamic batch, height and width, as the bytes of its file (a HAT traced
    for ONNX takes its naive attention path, which exports to plain MatMul/Softmax, whatever its ``attn_impl``)."""
    info = describe(model)
    window = info.window_size
    # Not a multiple of the window in either direction: the padding is traced as done, valid for every size.
    example = torch.rand(1, info.in_chans, 2 * window + 3, 3 * window + 5)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer and deprecation warnings about shapes as values; verified instead
        onnx_file = io.BytesIO()
        try:
            torch.onnx.export(model, (example, ), onnx_file, dynamo=False, opset_version=opset,
                              input_names=['input'], output_names=['output'],
                              dynamic_axes={'input': {0: 'batch', 2: 'height', 3: 'width'},
                                            'output': {0: 'batch', 2: 'out_height', 3: 'out_width'}})
        except Exception as error:  # the exporter's errors are long; the first line says what failed
            raise HatError(f'ONNX export failed: {first_line(error)}') from None
    return onnx_file.getvalue()


def verify_onnx(model: HAT, onnx_model: bytes, tolerance: float = TOLERANCE) -> float | None:
    """Largest difference between onnxruntime and PyTorch over a few input sizes (None without onnxruntime); raises
    HatError above ``tolerance``, and for any output that is not finite (NaN would compare as no difference)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(onnx_model, providers=['CPUExecutionProvider'])
    info = describe(model)
    window = info.window_size
    largest = 0.0
    # A multiple of the window, sizes that need padding, and one smaller than a window; a batch of 2.
    for batch, h, w in ((1, 2 * window, window), (2, window + 3, 2 * window + 1), (1, window // 2 + 1, 3)):
        x = torch.rand(batch, info.in_chans, h, w)
        with torch.no_grad():
            expected = model(x).numpy()
        got = session.run(None, {'input': x.numpy()})[0]
        if got.shape != expected.shape:
            raise HatError(f'ONNX model gives shape {got.shape} for input {tuple(x.shape)}; PyTorch {expected.shape}')
        for name, output in (('PyTorch', expected), ('onnxruntime', got)):
            if not np.isfinite(output).all():
                raise HatError(f'verification failed: {name} gives non-finite values (NaN or inf) on input '
                               f'{tuple(x.shape)}; the checkpoint holds non-finite weights or overflows')
        difference = float(abs(got - expected).max())
        if not difference <= tolerance:
            raise HatError(f'ONNX model differs from PyTorch by {difference:.2e} (> {tolerance:g}) on input '
                           f'{tuple(x.shape)}')
        largest = max(largest, difference)
    return largest
