"""``HATConfig``: the settings of one HAT network, checked once when made.

A HAT keeps the config it was built from (``HAT.config``), a model name stands for one, and checkpoint detection
returns one. A value that cannot build or run is a :class:`SettingError` naming its setting (a ``ValueError``; also a
``TypeError`` for a wrong type), an unknown name a ``TypeError``, here, before any layer is made: checking settings
from a file is making their config.
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
# Sizes that count something (channels, blocks, heads, pixels): each must be at least 1.
COUNTS = ('in_chans', 'embed_dim', 'window_size', 'compress_ratio', 'squeeze_factor')
PER_GROUP_COUNTS = ('depths', 'num_heads')
DROP_RATES = ('drop_rate', 'attn_drop_rate', 'drop_path_rate')


class SettingError(ValueError):
    """A value HAT cannot build or run with; ``setting`` names the argument at fault (callers that know another
    default, as the YOLO block, add it to the message)."""

    def __init__(self, setting: str, message: str):
        super().__init__(message)
        self.setting = setting


class SettingTypeError(SettingError, TypeError):
    """A value of the wrong type."""


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
                raise SettingTypeError(name, f'HAT argument {name}={value!r} has the wrong type: expected {kind}')


def _check_values(c: HATConfig) -> None:
    """Raise :class:`SettingError` for settings that cannot build or run."""
    for name in COUNTS:
        if getattr(c, name) < 1:
            raise SettingError(name, f'HAT argument {name}={getattr(c, name)!r} must be a positive number')
    for name in PER_GROUP_COUNTS:
        values = list(getattr(c, name))
        if not values or min(values) < 1:
            raise SettingError(name, f'HAT argument {name}={values!r} must be a list of positive numbers, one per '
                               'group')
    if not c.mlp_ratio > 0:
        raise SettingError('mlp_ratio', f'HAT argument mlp_ratio={c.mlp_ratio!r} must be positive')
    for name in DROP_RATES:
        if not 0 <= getattr(c, name) < 1:
            raise SettingError(name, f'HAT argument {name}={getattr(c, name)!r} must be in [0, 1)')
    if not c.img_range > 0:  # the input is multiplied by it and the output divided: 0 gives a blank image
        raise SettingError('img_range', f'img_range must be positive, got {c.img_range}')
    if len(c.depths) != len(c.num_heads):
        raise SettingError('num_heads', f'depths {list(c.depths)} and num_heads {list(c.num_heads)} must have the same '
                           'length')
    for heads in c.num_heads:
        if c.embed_dim % heads:
            raise SettingError('num_heads', f'num_heads {heads} must divide embed_dim {c.embed_dim}')
    for name in ('compress_ratio', 'squeeze_factor'):
        if c.embed_dim // getattr(c, name) < 1:
            raise SettingError(name, f'{name} {getattr(c, name)} leaves no channels of embed_dim {c.embed_dim} in '
                               'the CAB')
    if c.overlap_ratio < 0:
        raise SettingError('overlap_ratio', f'overlap_ratio must be >= 0, got {c.overlap_ratio}')
    overlap = int(c.window_size * c.overlap_ratio)
    if overlap % 2:
        raise SettingError('overlap_ratio', f'window_size {c.window_size} with overlap_ratio {c.overlap_ratio} gives '
                           f'an odd overlap of {overlap} pixels; overlapping windows must extend evenly on both sides')
    if c.upsampler not in UPSAMPLERS:
        raise SettingError('upsampler', f'upsampler {c.upsampler!r} is not one of {UPSAMPLERS}')
    if c.upsampler == 'pixelshuffle' and not (c.upscale == 3 or (c.upscale >= 1 and c.upscale & (c.upscale - 1) == 0)):
        raise SettingError('upscale', f"upsampler 'pixelshuffle' does scales 2^n and 3, not {c.upscale}")
    if c.upsampler == 'pixelshuffledirect' and c.upscale < 1:
        raise SettingError('upscale', f'upscale must be a positive integer, got {c.upscale}')
    if c.upsampler == 'nearest+conv' and c.upscale != 4:
        raise SettingError('upscale', f"upsampler 'nearest+conv' does scale 4 only, not {c.upscale}")
    if c.upsampler == '' and c.upscale != 1:
        raise SettingError('upscale', f"upsampler '' restores at scale 1 (no upsampling); got upscale={c.upscale}")
    if c.resi_connection not in RESI_CONNECTIONS:
        raise SettingError('resi_connection', f'resi_connection {c.resi_connection!r} is not one of {RESI_CONNECTIONS}')
    if c.resi_connection == '3conv' and c.embed_dim < 4:
        raise SettingError('embed_dim', f"resi_connection '3conv' needs embed_dim >= 4, got {c.embed_dim}")
    if c.patch_size != 1:
        raise SettingError('patch_size', f'HAT embeds single pixels; patch_size must be 1, got {c.patch_size}')
    check_attn_impl(c.attn_impl)

