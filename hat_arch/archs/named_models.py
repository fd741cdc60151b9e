"""Every released HAT by name, timm-style: :func:`list_models` and the table :data:`NAMED_MODELS` that
:func:`hat_arch.create_model` builds from.

A name is a configuration (:class:`~hat_arch.archs.config.HATConfig`) and, where the authors published weights for it,
the file they published (``release``), which users download themselves: nothing is fetched at run time. An entry whose
weights ship inside this package names the ``.safetensors`` file in ``hat_arch/weights/`` (``weights``), and
``create_model(name, pretrained=True)`` loads it.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

from hat_arch.archs.config import HATConfig
from hat_arch.errors import HatError, did_you_mean

# Where the authors publish their checkpoints (Google Drive and Baidu links), downloaded by hand: nothing is fetched.
RELEASED_MODELS_URL = 'https://github.com/XPixelGroup/HAT#how-to-test'
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / 'weights'  # package data: weights that ship with hat_arch
# What HAT computes faithfully in: fp16 overflows in the attention of released models (spandrel marks HAT as not
# supporting half precision); bf16 has fp32's range.
HAT_PRECISIONS = ('fp32', 'bf16')


@dataclass(frozen=True)
class NamedModel:
    """One named HAT."""
    name: str
    config: HATConfig
    release: str | None = None  # the authors' checkpoint file for these weights, e.g. 'HAT-S_SRx4.pth'
    weights: str | None = None  # a .safetensors file in WEIGHTS_DIR that create_model(pretrained=True) loads
    precisions: tuple[str, ...] = HAT_PRECISIONS  # the precisions it runs faithfully in

    @property
    def weights_path(self) -> Path | None:
        return None if self.weights is None else WEIGHTS_DIR / self.weights


NAMED_MODELS: dict[str, NamedModel] = {}


def register_model(entry: NamedModel) -> NamedModel:
    """Add ``entry`` to :data:`NAMED_MODELS`; a name can be registered once."""
    if entry.name in NAMED_MODELS:
        raise ValueError(f'model name {entry.name!r} is already registered')
    NAMED_MODELS[entry.name] = entry
    return entry


def list_models(pattern: str = '*', pretrained: bool = False) -> list[str]:
    """The model names matching the shell-style ``pattern`` (e.g. ``'HAT-L*'``), in registration order;
    ``pretrained``: only those whose weights ship with the package."""
    return [name for name, entry in NAMED_MODELS.items()
            if fnmatch.fnmatchcase(name, pattern) and (entry.weights is not None or not pretrained)]


def named_model(name: str) -> NamedModel:
    """The entry called ``name``; a HatError naming the closest name for one that is not registered."""
    try:
        return NAMED_MODELS[name]
    except KeyError:
        raise HatError(f'unknown model name {name!r}{did_you_mean(name, NAMED_MODELS)}; hat_arch.list_models() '
                       'lists them') from None


def name_of(config: HATConfig) -> str | None:
    """The first registered name whose network is ``config``'s (run settings such as ``attn_impl`` aside), if any:
    several releases share one architecture, and the architecture's own name (``HAT_SRx4``) comes first."""
    network = config.without_run_settings()
    return next((name for name, entry in NAMED_MODELS.items() if entry.config.without_run_settings() == network), None)


def _released(name: str, scale: int, embed_dim: int, groups: int, compress_ratio: int, squeeze_factor: int,
              release: str | None) -> NamedModel:
    """A released model: window 16, overlap 0.5, ``mlp_ratio`` 2, six blocks of six heads per group, pixel shuffle."""
    config = HATConfig(upscale=scale, embed_dim=embed_dim, depths=(6, ) * groups, num_heads=(6, ) * groups,
                       window_size=16, compress_ratio=compress_ratio, squeeze_factor=squeeze_factor, mlp_ratio=2,
                       overlap_ratio=0.5, upsampler='pixelshuffle', resi_connection='1conv')
    return register_model(NamedModel(name, config, release))


for _scale in (2, 3, 4):
    _released(f'HAT-S_SRx{_scale}', _scale, 144, 6, 24, 24, f'HAT-S_SRx{_scale}.pth')
for _scale in (2, 3, 4):
    _released(f'HAT_SRx{_scale}', _scale, 180, 6, 3, 30, f'HAT_SRx{_scale}.pth')
for _scale in (2, 3, 4):  # the authors published HAT-L only as trained on ImageNet first (below)
    _released(f'HAT-L_SRx{_scale}', _scale, 180, 12, 3, 30, None)
for _scale in (2, 3, 4):
    _released(f'HAT_SRx{_scale}_ImageNet-pretrain', _scale, 180, 6, 3, 30, f'HAT_SRx{_scale}_ImageNet-pretrain.pth')
for _scale in (2, 3, 4):
    _released(f'HAT-L_SRx{_scale}_ImageNet-pretrain', _scale, 180, 12, 3, 30,
              f'HAT-L_SRx{_scale}_ImageNet-pretrain.pth')
# Real-world degradations, GAN-trained (options/train/train_Real_HAT_GAN_SRx4_finetune_from_mse_model.yml); the
# sharper one is a later release of the same network.
_released('Real_HAT_GAN_SRx4', 4, 180, 6, 3, 30, 'Real_HAT_GAN_SRx4.pth')
_released('Real_HAT_GAN_SRx4_sharper', 4, 180, 6, 3, 30, 'Real_HAT_GAN_sharper.pth')
# Shipped inside the package (hat_arch.shipped_model), the model used when no checkpoint is named: HAT-T, every part
# of HAT at 32 channels, trained on T91 alone by options/train/train_HAT-T_SRx4_T91.yml.
register_model(NamedModel('HAT-T_SRx4_T91', HATConfig(
    upscale=4, embed_dim=32, depths=(2, 2), num_heads=(2, 2), window_size=8, compress_ratio=3,
    squeeze_factor=8, mlp_ratio=2, overlap_ratio=0.5, upsampler='pixelshuffledirect', resi_connection='1conv'),
    weights='HAT-T_SRx4_T91.safetensors'))
