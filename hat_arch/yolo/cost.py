"""What a YOLO model costs per image, counted the same way wherever hat_arch reports it (comparison, benchmark)."""
from __future__ import annotations

import torch


def count_gflops(model: torch.nn.Module, imgsz: int) -> float:
    """GFLOPs of one ``imgsz`` x ``imgsz`` forward (batch 1, eval mode) as ``torch.utils.flop_counter`` counts them,
    with HAT on its explicit attention path (the same function) so that attention's matrix products are counted too
    (Ultralytics' ``model.info()`` counts convolutions and linear layers only)."""
    from torch.utils.flop_counter import FlopCounterMode

    from hat_arch.archs.hat_arch import HAT

    parameter = next(model.parameters())
    image = torch.zeros(1, 3, imgsz, imgsz, dtype=parameter.dtype, device=parameter.device)
    hats = [m for m in model.modules() if isinstance(m, HAT)]
    impls = [hat.attn_impl for hat in hats]
    try:
        for hat in hats:
            hat.set_attn_impl('naive')
        with FlopCounterMode(display=False) as counter, torch.inference_mode():
            model.eval()(image)
    finally:
        for hat, impl in zip(hats, impls):
            hat.set_attn_impl(impl)
    return counter.get_total_flops() / 1e9
