"""``HATConfig``: the settings of one HAT network, checked once when made.

A HAT keeps the config it was built from (``HAT.config``), a model name stands for one, and checkpoint detection
returns one. A value that cannot build or run is a ``ValueError`` (``TypeError`` for a wrong type or an unknown name)
here, before any layer is made: checking settings from a file is making their config.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from hat_arch.errors import did_you_mean
from hat_arch.layers.context import check_attn_impl

UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', 'nearest+conv', '')
RESI_CONNECTIONS = ('1conv', '3conv', 'identity')
# Settings of a run rather than of the network: two configs differing only in these describe the same trained model.
RUN_SETTINGS = ('drop_rate', 'attn_drop_rate', 'drop_path_rate', 'use_checkpoint', 'attn_impl')


@dataclass(frozen=True)
class HATConfig:
    """The arguments of ``HAT(...)`` but ``norm_layer`` (a class, which no file can name), as a frozen value.

    ``depths`` and ``num_heads`` are kept as tuples. The defaults are HAT's (a small x2 network); see
    :class:`~hat_arch.archs.hat_arch.HAT` for what each setting does.
    """
    img_size: int | tuple[int, int] = 64
    patch_size: int = 1
    in_chans: int = 3
    embed_dim: int = 96
    depths: tuple[int, ...] = (6, 6, 6, 6)
    num_heads: tuple[int, ...] = (6, 6, 6, 6)
    window_size: int = 16
    compress_ratio: int = 3
    squeeze_factor: int = 30
    conv_scale: float = 0.01
    overlap_ratio: float = 0.5
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    qk_scale: float | None = None
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    patch_norm: bool = True
    use_checkpoint: bool = False
    upscale: int = 2
    img_range: float = 1.0
    upsampler: str = 'pixelshuffle'
    resi_connection: str = '1conv'
    attn_impl: str = 'sdpa'

    def __post_init__(self) -> None:
        for name in ('depths', 'num_heads'):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(value))
        if isinstance(self.img_size, list):
            object.__setattr__(self, 'img_size', tuple(self.img_size))
        _check_types(self)
        _check_values(self)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> HATConfig:
        """The config of a mapping of ``HAT`` arguments (an option file's ``network_g`` without ``type``); an unknown
        name is a TypeError that names it and the closest known one."""
        names = {f.name for f in dataclasses.fields(cls)}
        for name in options:
            if name not in names:
                raise TypeError(f'HAT has no argument {name!r}{did_you_mean(str(name), sorted(names))}')
        return cls(**options)

    def replace(self, **changes: Any) -> HATConfig:
        """A copy with ``changes``, checked again (an unknown name is a TypeError, as in :meth:`from_options`)."""
        return HATConfig.from_options({**self.as_kwargs(), **changes}) if changes else self

    def as_kwargs(self) -> dict[str, Any]:
        """The ``HAT(...)`` keyword arguments of this config."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def without_run_settings(self) -> HATConfig:
        """This config with the run settings (:data:`RUN_SETTINGS`) at their defaults: equal for two configs when
        they make the same function of the same weights."""
        defaults = HATConfig.__dataclass_fields__
        return self.replace(**{name: defaults[name].default for name in RUN_SETTINGS})


_INTEGERS = ('patch_size', 'in_chans', 'embed_dim', 'window_size', 'compress_ratio', 'squeeze_factor', 'upscale')
_REALS = ('conv_scale', 'overlap_ratio', 'mlp_ratio', 'drop_rate', 'attn_drop_rate', 'drop_path_rate', 'img_range')
_FLAGS = ('qkv_bias', 'patch_norm', 'use_checkpoint')
_TEXTS = ('upsampler', 'resi_connection', 'attn_impl')


def _is_integer(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_types(config: HATConfig) -> None:
    kinds = [(_INTEGERS, _is_integer, 'an integer'), (_REALS, _is_real, 'a number'),
             (_FLAGS, lambda v: isinstance(v, bool), 'true or false'), (_TEXTS, lambda v: isinstance(v, str), 'text'),
             (('depths', 'num_heads'), lambda v: isinstance(v, tuple) and all(map(_is_integer, v)),
              'a list of integers'),
             (('img_size', ), lambda v: _is_integer(v) or (isinstance(v, tuple) and len(v) == 2 and all(
                 map(_is_integer, v))), 'an integer or a pair of integers'),
             (('qk_scale', ), lambda v: v is None or _is_real(v), 'a number or none')]
    for names, is_kind, kind in kinds:
        for name in names:
            value = getattr(config, name)
            if not is_kind(value):
                raise TypeError(f'HAT argument {name}={value!r} has the wrong type: expected {kind}')


def _check_values(c: HATConfig) -> None:
    """Raise ValueError for settings that cannot build or run."""
    if not c.img_range > 0:  # the input is multiplied by it and the output divided: 0 gives a blank image
        raise ValueError(f'img_range must be positive, got {c.img_range}')
    if len(c.depths) != len(c.num_heads):
        raise ValueError(f'depths {list(c.depths)} and num_heads {list(c.num_heads)} must have the same length')
    for heads in c.num_heads:
        if heads < 1 or c.embed_dim % heads:
            raise ValueError(f'num_heads {heads} must divide embed_dim {c.embed_dim}')
    if c.compress_ratio < 1 or c.embed_dim // c.compress_ratio < 1:
        raise ValueError(f'compress_ratio {c.compress_ratio} leaves no channels of embed_dim {c.embed_dim} in the CAB')
    if c.squeeze_factor < 1 or c.embed_dim // c.squeeze_factor < 1:
        raise ValueError(f'squeeze_factor {c.squeeze_factor} leaves no channels of embed_dim {c.embed_dim} in the '
                         'CAB')
    if c.window_size < 1:
        raise ValueError(f'window_size must be positive, got {c.window_size}')
    if c.overlap_ratio < 0:
        raise ValueError(f'overlap_ratio must be >= 0, got {c.overlap_ratio}')
    overlap = int(c.window_size * c.overlap_ratio)
    if overlap % 2:
        raise ValueError(f'window_size {c.window_size} with overlap_ratio {c.overlap_ratio} gives an odd overlap of '
                         f'{overlap} pixels; overlapping windows must extend evenly on both sides')
    if c.upsampler not in UPSAMPLERS:
        raise ValueError(f'upsampler {c.upsampler!r} is not one of {UPSAMPLERS}')
    if c.upsampler == 'pixelshuffle' and not (c.upscale == 3 or (c.upscale >= 1 and c.upscale & (c.upscale - 1) == 0)):
        raise ValueError(f"upsampler 'pixelshuffle' does scales 2^n and 3, not {c.upscale}")
    if c.upsampler == 'pixelshuffledirect' and c.upscale < 1:
        raise ValueError(f'upscale must be a positive integer, got {c.upscale}')
    if c.upsampler == 'nearest+conv' and c.upscale != 4:
        raise ValueError(f"upsampler 'nearest+conv' does scale 4 only, not {c.upscale}")
    if c.upsampler == '' and c.upscale != 1:
        raise ValueError(f"upsampler '' restores at scale 1 (no upsampling); got upscale={c.upscale}")
    if c.resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f'resi_connection {c.resi_connection!r} is not one of {RESI_CONNECTIONS}')
    if c.resi_connection == '3conv' and c.embed_dim < 4:
        raise ValueError(f"resi_connection '3conv' needs embed_dim >= 4, got {c.embed_dim}")
    if c.patch_size != 1:
        raise ValueError(f'HAT embeds single pixels; patch_size must be 1, got {c.patch_size}')
    check_attn_impl(c.attn_impl)

