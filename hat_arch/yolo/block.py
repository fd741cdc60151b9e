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

from hat_arch.archs.config import HATConfig, SettingError
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


def _default(name: str) -> Any:
    """The block's default for ``name`` as a YAML row writes it (lists, not tuples)."""
    value = getattr(FEATURE_MAP_DEFAULTS, name)
    return list(value) if isinstance(value, tuple) else value


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
    if not isinstance(in_channels, int) or in_channels < 1:
        raise HatError(f'HAT needs a positive number of input channels, got {in_channels!r}')
    where = f'HAT on {in_channels} channels'
    try:
        config = FEATURE_MAP_DEFAULTS.replace(**given, in_chans=in_channels)
    except SettingError as error:  # the block's own default, where the user changed it
        default = f' (default: {_default(error.setting)!r})' if error.setting in given else ''
        raise HatError(f'{where} cannot build: {error}{default}') from None
    except (TypeError, ValueError) as error:
        raise HatError(f'{where} cannot build: {error}') from None
    check_limits(config.as_kwargs(), where)  # sizes within hat_arch's limits and the memory there is
    return config.as_kwargs()


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
