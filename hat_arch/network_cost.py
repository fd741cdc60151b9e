"""What a HAT configuration costs, judged from its settings alone, before any layer is made.

A 1.4 MB checkpoint can describe a window of 160 (its index buffers alone would be 5 GB), a 20000-channel first conv
or 10,000 groups: building that network takes minutes and tens of GB. :func:`check_limits` refuses such a
configuration in one line, against limits far above every released model (HAT-L: width 180, 12 groups of 6 blocks,
window 16) and against the memory there is; :func:`expected_shapes` is the state dict a configuration builds (every
key with its exact shape), so a file's tensors are compared with it before building too.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from hat_arch.archs.config import HATConfig
from hat_arch.archs.hat_arch import NUM_FEAT
from hat_arch.errors import HatError
from hat_arch.image_memory import MEMORY_HEADROOM, available_memory

HAT_DEFAULTS: dict[str, Any] = HATConfig().as_kwargs()
# Upper bounds on what one HAT may ask for: several times what any published HAT uses, far below what would
# exhaust a machine by the size of the network alone.
MAX_SETTINGS: dict[str, int | float] = {
    'in_chans': 4096,  # a YOLO feature map's channels; images have 1-4
    'embed_dim': 2048,
    'groups': 64,  # len(depths)
    'depth': 64,  # blocks per group
    'num_heads': 256,
    'window_size': 64,
    'upscale': 16,
    'mlp_ratio': 16,
    'overlap_ratio': 2,
}
INDEX_BYTES = 8  # the relative position indices are int64
FLOAT_BYTES = 4
Shapes = dict[str, tuple[int, ...]]


def check_limits(config: Mapping[str, Any], where: str, origin: Mapping[str, str] | None = None,
                 memory: bool = True) -> None:
    """A one-line HatError ``<where>: ...`` if the HAT of ``config`` (``HAT(...)`` keyword arguments; the rest are
    HAT's defaults) cannot build, asks for more than :data:`MAX_SETTINGS`, or (``memory``) would not fit in
    :data:`~hat_arch.image_memory.MEMORY_HEADROOM` of the available memory. ``origin`` maps a setting to the tensor it
    was read from, named in the message."""
    full = {**HAT_DEFAULTS, **config}
    origin = origin or {}

    def refuse(setting: str, value: Any, problem: str) -> HatError:
        source = f' (from {origin[setting]})' if setting in origin else ''
        shown = value if isinstance(value, str) else repr(list(value) if isinstance(value, tuple) else value)
        return HatError(f'{where}: {setting} {shown}{source} {problem}')  # lists, as option files write them

    for setting in ('in_chans', 'embed_dim', 'window_size', 'upscale'):
        value = full[setting]
        if type(value) is not int or value < 1:
            raise refuse(setting, value, 'must be a positive integer')
    for setting in ('depths', 'num_heads'):
        values = full[setting]
        if not isinstance(values, (list, tuple)) or not values:
            raise refuse(setting, values, 'must be a non-empty list of positive integers')
        for value in values:
            if type(value) is not int or value < 1:
                raise refuse(setting, list(values), 'must hold positive integers only')
    named = {**{key: full[key] for key in MAX_SETTINGS if key in full}, 'groups': len(full['depths']),
             'depth': max(full['depths']), 'num_heads': max(full['num_heads'])}
    for setting, limit in MAX_SETTINGS.items():
        if not named[setting] <= limit:
            shown = {'groups': ('depths', f'{named[setting]} groups'),
                     'depth': ('depths', f'{named[setting]} blocks in a group')}.get(setting)
            key, what = shown or (setting, None)
            value = full[key] if shown is None else _short(full[key])
            limit_text = f'{what}, more than the {limit}' if what else f'is more than the {limit}'
            raise refuse(key, value, f'{"asks for " if what else ""}{limit_text} hat_arch allows')
    try:
        HATConfig.from_options(full)
    except (TypeError, ValueError) as error:
        raise HatError(f'{where} cannot build: {error}') from None
    if memory:
        check_network_memory(full, where)


def _short(values: Any) -> str:
    values = list(values)
    return str(values) if len(values) <= 8 else f'[{", ".join(map(str, values[:4]))}, ... ({len(values)} values)]'


def network_bytes(config: Mapping[str, Any]) -> int:
    """Memory of a built HAT: its parameters and buffers (float32; the position indices int64)."""
    full = {**HAT_DEFAULTS, **config}
    shapes = expected_shapes(full)
    indices = sum(math.prod(shapes[key]) for key in ('relative_position_index_SA', 'relative_position_index_OCA'))
    floats = sum(math.prod(shape) for shape in shapes.values()) - indices
    # Not in the state dict: the shift's region masks (2, 2, ws*ws, ws*ws) and the mean (one per channel).
    unsaved = 4 * full['window_size']**4 + full['in_chans']
    return indices * INDEX_BYTES + (floats + unsaved) * FLOAT_BYTES


def check_network_memory(config: Mapping[str, Any], where: str) -> None:
    """HatError if building the HAT of ``config`` would take more than its share of the available memory."""
    needed, budget = network_bytes(config), MEMORY_HEADROOM * available_memory()
    if needed > budget:
        raise HatError(f'{where}: the network it describes would take {needed / 2**30:.1f} GiB to build; '
                       f'{budget / 2**30:.1f} GiB can be spared')


def expected_shapes(config: Mapping[str, Any]) -> Shapes:
    """Every key of the state dict that ``HAT(**config)`` has, with its shape, in HAT's order; nothing is built.
    ``config`` must pass :func:`check_limits` (widths are computed as HAT computes them)."""
    full = {**HAT_DEFAULTS, **config}
    dim, ws, in_chans = full['embed_dim'], full['window_size'], full['in_chans']
    ows = int(ws * full['overlap_ratio']) + ws
    shapes: Shapes = {'relative_position_index_SA': (ws * ws, ws * ws),
                      'relative_position_index_OCA': (ws * ws, ows * ows)}
    shapes.update(_conv('conv_first', in_chans, dim, 3))
    if full['patch_norm']:
        shapes.update(_vector('patch_embed.norm', dim, 'weight', 'bias'))
    hidden = int(dim * full['mlp_ratio'])
    for i, (depth, heads) in enumerate(zip(full['depths'], full['num_heads'])):
        group = f'layers.{i}.residual_group.'
        for j in range(depth):
            block = f'{group}blocks.{j}.'
            shapes.update(_vector(block + 'norm1', dim, 'weight', 'bias'))
            shapes[block + 'attn.relative_position_bias_table'] = ((2 * ws - 1)**2, heads)
            shapes.update(_linear(block + 'attn.qkv', dim, 3 * dim, full['qkv_bias']))
            shapes.update(_linear(block + 'attn.proj', dim, dim))
            cab, squeezed = dim // full['compress_ratio'], dim // full['squeeze_factor']
            shapes.update(_conv(block + 'conv_block.cab.0', dim, cab, 3))
            shapes.update(_conv(block + 'conv_block.cab.2', cab, dim, 3))
            shapes.update(_conv(block + 'conv_block.cab.3.attention.1', dim, squeezed, 1))
            shapes.update(_conv(block + 'conv_block.cab.3.attention.3', squeezed, dim, 1))
            shapes.update(_vector(block + 'norm2', dim, 'weight', 'bias'))
            shapes.update(_mlp(block + 'mlp', dim, hidden))
        ocab = group + 'overlap_attn.'
        shapes[ocab + 'relative_position_bias_table'] = ((ws + ows - 1)**2, heads)
        shapes.update(_vector(ocab + 'norm1', dim, 'weight', 'bias'))
        shapes.update(_linear(ocab + 'qkv', dim, 3 * dim, full['qkv_bias']))
        shapes.update(_linear(ocab + 'proj', dim, dim))
        shapes.update(_vector(ocab + 'norm2', dim, 'weight', 'bias'))
        shapes.update(_mlp(ocab + 'mlp', dim, hidden))
        shapes.update(_residual_conv(f'layers.{i}.conv', dim, full['resi_connection']))
    shapes.update(_vector('norm', dim, 'weight', 'bias'))
    shapes.update(_residual_conv('conv_after_body', dim, full['resi_connection']))
    shapes.update(_reconstruction(full['upsampler'], full['upscale'], dim, in_chans))
    return shapes


def _vector(prefix: str, size: int, *names: str) -> Shapes:
    return {f'{prefix}.{name}': (size, ) for name in names}


def _linear(prefix: str, width_in: int, width_out: int, bias: bool = True) -> Shapes:
    return {f'{prefix}.weight': (width_out, width_in), **(_vector(prefix, width_out, 'bias') if bias else {})}


def _conv(prefix: str, width_in: int, width_out: int, kernel: int) -> Shapes:
    return {f'{prefix}.weight': (width_out, width_in, kernel, kernel), f'{prefix}.bias': (width_out, )}


def _mlp(prefix: str, dim: int, hidden: int) -> Shapes:
    return {**_linear(f'{prefix}.fc1', dim, hidden), **_linear(f'{prefix}.fc2', hidden, dim)}


def _residual_conv(prefix: str, dim: int, resi_connection: str) -> Shapes:
    if resi_connection == '1conv':
        return _conv(prefix, dim, dim, 3)
    if resi_connection == '3conv':
        quarter = dim // 4
        return {**_conv(f'{prefix}.0', dim, quarter, 3), **_conv(f'{prefix}.2', quarter, quarter, 1),
                **_conv(f'{prefix}.4', quarter, dim, 3)}
    return {}


def _reconstruction(upsampler: str, scale: int, dim: int, in_chans: int) -> Shapes:
    if upsampler == 'pixelshuffledirect':
        return _conv('upsample.0', dim, scale**2 * in_chans, 3)
    if not upsampler:
        return _conv('conv_last', dim, in_chans, 3)
    shapes = _conv('conv_before_upsample.0', dim, NUM_FEAT, 3)
    if upsampler == 'pixelshuffle':
        factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        for i, factor in enumerate(factors):  # each conv is followed by its pixel shuffle
            shapes.update(_conv(f'upsample.{2 * i}', NUM_FEAT, factor**2 * NUM_FEAT, 3))
    else:  # 'nearest+conv'
        for name in ('conv_up1', 'conv_up2', 'conv_hr'):
            shapes.update(_conv(name, NUM_FEAT, NUM_FEAT, 3))
    shapes.update(_conv('conv_last', NUM_FEAT, in_chans, 3))
    return shapes
