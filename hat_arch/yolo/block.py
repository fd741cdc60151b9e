"""``HATBlock``: HAT as a same-size attention block on a detector's feature map (or on the image).

A HAT with ``upscale=1, upsampler=''`` returns its input plus a learned residual (``image + conv_last(features)``),
for any channel count: the block is that network with defaults chosen for feature maps. A model YAML row
``[-1, 1, HAT, ARGS]`` builds ``HATBlock(c1, *ARGS)``, ``c1`` coming from the graph (see :mod:`hat_arch.yolo.parser`).

``ARGS`` forms: ``[]`` (the defaults below), positional ``[embed_dim, depths, num_heads, window_size]`` (any prefix),
then optionally one mapping of any other HAT argument by name: ``[64, [2], [4], 8, {mlp_ratio: 2.0}]`` or
``[{embed_dim: 96, depths: [2, 2], num_heads: [6, 6]}]``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from hat_arch.archs.config import HATConfig
from hat_arch.archs.hat_arch import HAT
from hat_arch.errors import HatError, did_you_mean
from hat_arch.network_cost import HAT_DEFAULTS, check_limits

# Small width, one group of two blocks, a window of 8 that tiles P3 (80) and P4 (40) at 640 input exactly; other map
# sizes are reflect-padded to the window, as in any HAT. No stochastic depth: one block per map, every step learns.
# (in_chans: a placeholder for the channels each block receives.)
FEATURE_MAP_DEFAULTS = HATConfig(embed_dim=64, depths=(2, ), num_heads=(4, ), window_size=8, mlp_ratio=2.0,
                                 compress_ratio=4, squeeze_factor=16, drop_path_rate=0.0, upscale=1, upsampler='')
POSITIONAL = ('embed_dim', 'depths', 'num_heads', 'window_size')
# Fixed by what the block is (a same-size residual block on the channels it receives) or not expressible in YAML.
FIXED = ('in_chans', 'upscale', 'upsampler', 'patch_size', 'norm_layer')
ARGUMENTS = tuple(name for name in HAT_DEFAULTS if name not in FIXED)


# Sizes that count something (channels, blocks, heads, pixels): each must be at least 1.
COUNTS = ('embed_dim', 'depths', 'num_heads', 'window_size', 'compress_ratio', 'squeeze_factor')


def _default(name: str) -> Any:
    """The block's default for ``name`` as a YAML row writes it (lists, not tuples)."""
    value = getattr(FEATURE_MAP_DEFAULTS, name)
    return list(value) if isinstance(value, tuple) else value


def _check_value(name: str, value: Any) -> None:
    """A :class:`HatError` naming ``name``, ``value`` and the block's default for a mistyped value or a size that
    counts nothing (``depths: [0]`` would build a HAT without transformer blocks)."""
    default = HAT_DEFAULTS[name]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int) and name != 'img_size':
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif default is None:  # qk_scale: a number, or none for the head's own scale
        ok = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    elif isinstance(default, str):
        ok = isinstance(value, str)
    else:  # depths, num_heads, img_size: integers
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (value if isinstance(value, (list, tuple))
                                                                          else [value]))
        ok = ok and (name == 'img_size' or isinstance(value, (list, tuple)))
    if not ok:
        raise HatError(f'HAT argument {name}={value!r} has the wrong type (default: {_default(name)!r})')
    if name in COUNTS:
        counts = list(value) if isinstance(value, (list, tuple)) else [value]
        if not counts or min(counts) < 1:
            what = 'a list of positive numbers, one per group' if isinstance(value, (list, tuple)) else \
                'a positive number'
            raise HatError(f'HAT argument {name}={value!r} must be {what} (default: {_default(name)!r})')
    if name == 'mlp_ratio' and not value > 0:
        raise HatError(f'HAT argument mlp_ratio={value!r} must be positive (default: {_default(name)!r})')
    if name == 'drop_path_rate' and not 0 <= value < 1:
        raise HatError(f'HAT argument drop_path_rate={value!r} must be in [0, 1) (default: {_default(name)!r})')


def resolve_options(in_channels: int, args: Sequence[Any]) -> dict[str, Any]:
    """HAT's keyword arguments for a block on ``in_channels`` channels from a YAML row's ``args``; a
    :class:`HatError` naming the argument for one that is unknown, mistyped or cannot build."""
    args = list(args)
    named = args.pop() if args and isinstance(args[-1], dict) else {}
    if len(args) > len(POSITIONAL):
        raise HatError(f'HAT takes at most {len(POSITIONAL)} positional arguments ({", ".join(POSITIONAL)}) and '
                       f'one mapping of named ones; got {args!r}')
    given = dict(zip(POSITIONAL, args))
    for name, value in named.items():
        if name not in ARGUMENTS:
            fixed = f' (fixed by the block: {", ".join(FIXED)})' if name in FIXED else did_you_mean(name, ARGUMENTS)
            raise HatError(f'HAT has no argument {name!r}{fixed}')
        if name in given:
            raise HatError(f'HAT argument {name!r} given twice (positionally and by name)')
        given[name] = value
    for name, value in given.items():
        _check_value(name, value)
    if not isinstance(in_channels, int) or in_channels < 1:
        raise HatError(f'HAT needs a positive number of input channels, got {in_channels!r}')
    options = {**FEATURE_MAP_DEFAULTS.as_kwargs(), **given, 'in_chans': in_channels}
    # Sizes within hat_arch's limits and the memory there is, before any layer is made; the config's own checks say
    # what else cannot build.
    check_limits(options, f'HAT on {in_channels} channels')
    return HATConfig.from_options(options).as_kwargs()


class HATBlock(nn.Module):
    """(b, c1, h, w) -> (b, c1, h, w): the input plus HAT's learned residual; any h and w.

    Args:
        c1: channels in and out (from the graph in a model YAML).
        *args: the YAML row's arguments (see the module's docstring); Python callers may pass names as keywords.
    """

    def __init__(self, c1: int, *args: Any, **kwargs: Any):
        super().__init__()
        self.options = resolve_options(c1, [*args, kwargs] if kwargs else args)
        self.in_channels = c1
        self.hat = HAT(**self.options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hat(x)
