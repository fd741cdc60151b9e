"""``create_model``: a HAT by name (:func:`~hat_arch.archs.named_models.list_models`), timm-style, with the weights
that ship with the package or from a checkpoint file."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hat_arch.archs.hat_arch import HAT
from hat_arch.archs.named_models import RELEASED_MODELS_URL, named_model
from hat_arch.checkpoint import load_weights, model_info, read_state_dict
from hat_arch.errors import HatError
from hat_arch.layers.init import weights_loaded_after


def create_model(name: str, pretrained: bool = False, weights: str | Path | None = None, **overrides: Any) -> HAT:
    """The HAT called ``name``, e.g. ``create_model('HAT-S_SRx4')``, in training mode as ``nn.Module`` makes it.

    Args:
        name: one of :func:`hat_arch.list_models`.
        pretrained: load the weights that ship with the package for this name (``list_models(pretrained=True)``);
            a HatError names the authors' file to download for one without.
        weights: a checkpoint file (``.pth`` / ``.safetensors``, read as :func:`hat_arch.load_model` reads it) to
            load instead; it must fit the named network.
        overrides: ``HAT(...)`` arguments replacing the named ones, e.g. ``attn_impl='naive'``,
            ``use_checkpoint=True``, ``drop_path_rate=0.0``.

    Raises HatError, in one line, for an unknown name, an override HAT refuses, or weights that do not fit.
    """
    entry = named_model(name)
    try:
        config = entry.config.replace(**overrides)
    except (TypeError, ValueError) as error:
        raise HatError(f'{name}: cannot build HAT: {error}') from None
    if pretrained and weights is None:
        weights = entry.weights_path
        if weights is None:
            where = f'download {entry.release} ({RELEASED_MODELS_URL}) and pass weights=' if entry.release else \
                'pass weights='
            raise HatError(f'{name} has no weights in the package; {where}<the file>, or use '
                           'hat_arch.load_model(<the file>)')
    if weights is None:
        model = HAT.from_config(config)
    else:
        state_dict = read_state_dict(weights)
        with weights_loaded_after():  # no initialisation: every tensor is overwritten
            model = HAT.from_config(config)
        load_weights(model, state_dict, f'checkpoint {weights}')
    num_params = sum(p.numel() for p in model.parameters())
    model.model_info = model_info(config, num_params, None if weights is None else Path(weights), name)
    return model
