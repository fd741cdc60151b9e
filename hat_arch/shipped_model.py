"""The small HAT x4 shipped inside the package, so that ``hat-sr`` and :func:`hat_arch.load_model` give a result
with no download: the model used when no checkpoint is named.

It is HAT-T (HAT with every part, at 32 channels, two groups of two blocks, 8x8 windows; 121k parameters) trained
on T91 alone by ``options/train/train_HAT-T_SRx4_T91.yml``, and named ``HAT-T_SRx4_T91``
(``hat_arch.create_model('HAT-T_SRx4_T91', pretrained=True)``); ``options/test/HAT-T_SRx4_T91.yml`` evaluates it on
Set5 and Set14. The weights are a ``.safetensors`` file (tensors only), read and checked like any other checkpoint. The
released models are larger and sharper; they are named with ``-m``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from hat_arch.archs.named_models import RELEASED_MODELS_URL, list_models, named_model
from hat_arch.errors import HatError, report_user_errors

SHIPPED_MODEL_NAME = 'HAT-T_SRx4_T91'
SHIPPED_MODEL_PATH = named_model(SHIPPED_MODEL_NAME).weights_path
SHIPPED_MODEL_NOTE = (f'using the built-in {SHIPPED_MODEL_NAME} (a small x4 model trained on T91); the released HAT '
                      f'checkpoints are sharper: download one ({RELEASED_MODELS_URL}) and pass it with -m')


def checkpoint_or_shipped(checkpoint: str | Path | None,
                          announce: Callable[[str], None] | None = None) -> Path:
    """The checkpoint file a command runs: ``checkpoint`` as a path; the name of a model whose weights ship in the
    package (``HAT-T_SRx4_T91``, see ``hat_arch.list_models(pretrained=True)``) as its file, unless a file of that name
    exists; None: the shipped model's file, and then ``announce`` gets :data:`SHIPPED_MODEL_NOTE`, the one line that
    says which model runs and where better ones are."""
    if checkpoint is None:
        if announce is not None:
            announce(SHIPPED_MODEL_NOTE)
        return SHIPPED_MODEL_PATH
    path = Path(checkpoint)
    if not path.exists() and str(checkpoint) in list_models(pretrained=True):
        return named_model(str(checkpoint)).weights_path
    return path


def ship_weights(checkpoint: str | Path, target: str | Path = SHIPPED_MODEL_PATH) -> Path:
    """Write the weights of a run of the shipped recipe (its EMA weights, as BasicSR saves them in
    ``experiments/HAT-T_SRx4_T91/models/net_g_latest.pth``) as the shipped ``.safetensors`` file, tensors only."""
    from safetensors.torch import save

    from hat_arch.atomic_write import write_bytes_atomic
    from hat_arch.checkpoint import detect_config, read_state_dict

    state_dict = read_state_dict(checkpoint)
    detect_config(state_dict, name=str(checkpoint))  # a HAT, or a one-line error before anything is written
    data = save({key: tensor.contiguous() for key, tensor in state_dict.items()},
                metadata={'name': SHIPPED_MODEL_NAME, 'recipe': f'options/train/train_{SHIPPED_MODEL_NAME}.yml'})
    target = Path(target)
    write_bytes_atomic(target, data)
    return target


def _ship(argv: list[str]) -> int:
    if len(argv) != 1:
        raise HatError('usage: python -m hat_arch.shipped_model CHECKPOINT (e.g. '
                       'experiments/HAT-T_SRx4_T91/models/net_g_latest.pth)')
    print(ship_weights(argv[0]))
    return 0


if __name__ == '__main__':
    import sys

    raise SystemExit(report_user_errors(lambda: _ship(sys.argv[1:]), 'python -m hat_arch.shipped_model'))
