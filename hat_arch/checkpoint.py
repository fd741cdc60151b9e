"""HAT checkpoints: the one loading path (read, unwrap, fill the index buffers, load with one mismatch message), the
network's settings read from the tensors, and a descriptor of a model that callers read instead of its internals.

Released checkpoints (``HAT-S_SRx4.pth``, ``HAT_SRx4_ImageNet-pretrain.pth``, ``Real_HAT_GAN_SRx4.pth``, ...) store a
state dict under ``params_ema`` (BasicSR also writes ``params``); other tools save it under ``params-ema``,
``state_dict`` or ``model``, or bare, maybe with the ``module.`` prefix of ``DataParallel`` or the ``netG.`` of a
GAN trainer, as ``.pth`` or ``.safetensors``. Every architectural setting shows in some
tensor's shape, so no option file is needed. Only shapes are read, so detection also works on meta tensors.

What shapes cannot tell: ``img_range`` (released models use 1.0), ``conv_scale`` (0.01) and ``img_size`` (64; it
only matters for a window as large as the training patch). Pass them to :func:`load_model` to override.
"""
from __future__ import annotations

import math
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hat_arch.archs.config import HATConfig
from hat_arch.archs.hat_arch import HAT, NUM_FEAT
from hat_arch.archs.named_models import HAT_PRECISIONS, NAMED_MODELS, name_of
from hat_arch.errors import HatError, first_line
from hat_arch.layers.init import weights_loaded_after
from hat_arch.network_cost import MAX_SETTINGS, check_limits, expected_shapes
from hat_arch.shipped_model import checkpoint_or_shipped
from hat_arch.state_dict import POSITION_INDEX_KEYS, StateDictMismatch, describe_state_dict_mismatch

# Where a checkpoint keeps the state dict: BasicSR's keys, the EMA weights first (the released ones), then the keys
# other tools use (Real-ESRGAN's 'params-ema', Lightning's 'state_dict', 'model'), as spandrel reads them.
STATE_DICT_KEYS = ('params_ema', 'params', 'params-ema', 'state_dict', 'model')
KEY_PREFIXES = ('module.', 'netG.')  # DataParallel's, and GAN trainers' generator prefix
PRECISIONS = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
PICKLED_GLOBAL = re.compile(r'GLOBAL ([\w.]+)')  # how torch's weights-only unpickler names an object it refuses


def read_state_dict(path: str | Path, param_key: str | None = None,
                    what: str = 'checkpoint') -> dict[str, torch.Tensor]:
    """The network weights in a ``.pth`` / ``.safetensors`` file, with ``module.`` and ``netG.`` prefixes removed.

    ``param_key`` picks the entry of a BasicSR checkpoint as BasicSR's ``load_network`` does (falling back to
    ``params``), and a bare state dict is taken as it is; without it, the first of :data:`STATE_DICT_KEYS`, then the
    top level. Loads with ``weights_only=True`` (no code in the file runs). Raises HatError naming the file (as
    ``what``) if it does not exist, cannot be read or holds no state dict.
    """
    return read_state_dict_entry(path, param_key, what)[0]


def read_state_dict_entry(path: str | Path, param_key: str | None = None,
                          what: str = 'checkpoint') -> tuple[dict[str, torch.Tensor], str | None]:
    """:func:`read_state_dict`, and the entry of the file it came from (``'params'`` when it fell back from
    ``param_key``; None for a bare state dict)."""
    path = Path(path)
    if path.is_dir():
        raise HatError(f'{what} {path} is a folder; name a checkpoint file (.pth or .safetensors)')
    if not path.is_file():
        raise HatError(f'{what} {path} does not exist')
    try:
        if path.suffix == '.safetensors':
            from safetensors.torch import load_file

            checkpoint: Any = load_file(str(path), device='cpu')
        else:
            with open(path, 'rb') as file:
                if not file.read(4).startswith((b'PK\x03\x04', b'\x80')):  # torch.save's zip, or a legacy pickle
                    raise HatError(f'cannot read {what} {path}: not a PyTorch checkpoint (.pth) file')
            checkpoint = load_weights_only(path, what)
    except HatError:
        raise
    except Exception as error:  # torch and safetensors raise many types for a bad file; all mean "cannot read"
        raise HatError(f'cannot read {what} {path}: {first_line(error)}') from None
    entry = None
    if isinstance(checkpoint, dict) and param_key is not None and not _is_state_dict(checkpoint):
        entry = param_key if param_key in checkpoint or 'params' not in checkpoint else 'params'
        if entry not in checkpoint:
            first = ', '.join(map(str, list(checkpoint)[:5])) + (', ...' if len(checkpoint) > 5 else '')
            raise HatError(f'{what} {path} has no {param_key!r} entry (its keys: {first})')
        checkpoint = checkpoint[entry]
    elif isinstance(checkpoint, dict):
        entry = next((key for key in STATE_DICT_KEYS if isinstance(checkpoint.get(key), dict)), None)
        checkpoint = checkpoint[entry] if entry else checkpoint
    if not _is_state_dict(checkpoint):
        raise HatError(f'{what} {path} holds no state dict (expected tensors, under {" or ".join(STATE_DICT_KEYS)} '
                       'or at the top level)')
    return {_strip_prefixes(key): value for key, value in checkpoint.items()}, entry


def _strip_prefixes(key: str) -> str:
    for prefix in KEY_PREFIXES:
        key = key.removeprefix(prefix)
    return key


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``model`` strictly; a HatError ``<source> does not fit <Model>: <first differences>``
    in one line if it does not fit (the one mismatch message of checkpoints, ``hat-sr`` and ``basicsr``)."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except StateDictMismatch as error:  # HAT names the first differences itself (with its index buffers filled)
        raise HatError(f'{source} does not fit {type(model).__name__}: {error.problem}') from None
    except RuntimeError:  # torch lists every key: name the first few
        problem = describe_state_dict_mismatch(model.state_dict(), state_dict)
        raise HatError(f'{source} does not fit {type(model).__name__}: {problem}') from None


def load_weights_only(path: str | Path, what: str = 'checkpoint', mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)`` onto the CPU: no code in the file runs (``mmap``: tensors are read
    when used; the load itself reads the file's index only).

    A file whose pickle names Python objects (code that loading would run) and a damaged or truncated file are each a
    one-line :class:`HatError` naming the file as ``what``, instead of PyTorch's paragraph (which suggests loading
    with ``weights_only=False``: running the file's code).
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        code = refused_object(error)
        if code:
            raise HatError(f'{what} {path} was refused: loading it would run code (it names the Python object '
                           f'{code}); hat_arch reads only files of tensors, such as a state dict saved by '
                           'torch.save or a .safetensors file') from None
        raise HatError(f'cannot read {what} {path}: damaged, or not a file of tensors ({_first_sentence(error)})') \
            from None
    except OSError as error:
        raise HatError(f'cannot read {what} {path}: {first_line(error)}') from None
    except Exception as error:  # a truncated zip (RuntimeError), a pickle that ends early (EOFError), ...
        raise HatError(f'cannot read {what} {path}: damaged or truncated ({_first_sentence(error)})') from None


def refused_object(error: Exception) -> str | None:
    """The Python object (``posix.system``) whose loading a weights-only ``torch.load`` refused with ``error``; None
    when it failed for another reason."""
    code = PICKLED_GLOBAL.search(str(error)) if isinstance(error, pickle.UnpicklingError) else None
    return code[1] if code else None


def _first_sentence(error: Exception) -> str:
    # PyTorch's first line runs on for sentences (advice, links): the first one says what is wrong.
    return re.sub(r'^Weights only load failed\. ', '', first_line(error)).split('. ')[0].rstrip('.')


def _is_state_dict(checkpoint: Any) -> bool:
    return isinstance(checkpoint, dict) and bool(checkpoint) and all(
        isinstance(value, torch.Tensor) for value in checkpoint.values())


def detect_config(state_dict: dict[str, torch.Tensor], name: str = 'state dict') -> HATConfig:
    """The :class:`HATConfig` of a network with exactly these tensors (its name, if it has one:
    :func:`~hat_arch.archs.named_models.name_of`, or :func:`describe`'s ``name``).

    Reads shapes only: window size from ``relative_position_index_SA`` (or a self-attention bias table), the
    overlapping window from ``relative_position_index_OCA`` (or the OCAB table), groups and blocks from the keys, heads
    from the tables' columns, widths and ratios from the conv and MLP weights, scale and upsampler from the
    reconstruction convs. Settings no tensor shows (``img_range``, ``conv_scale``, ``img_size``) keep
    :class:`HATConfig`'s defaults, the reference's.
    Before anything is built, the settings are held to :func:`~hat_arch.network_cost.check_limits` (sane sizes, the
    memory there is) and every tensor to the shape they imply. Raises HatError, in one line naming ``name`` and the
    key at fault, for a state dict that is not a HAT or describes one too large to build.
    """
    shapes = _Shapes({key: tuple(value.shape) for key, value in state_dict.items()}, name)
    group = 'layers.0.residual_group.'
    for key in ('conv_first.weight', group + 'blocks.0.attn.relative_position_bias_table',
                group + 'overlap_attn.relative_position_bias_table', group + 'blocks.0.conv_block.cab.0.weight'):
        if key not in shapes:
            first = ', '.join(list(shapes)[:3])
            raise HatError(f'{name} is not a HAT checkpoint: it has no {key!r} (its first keys: {first})')

    embed_dim, in_chans = shapes.dims('conv_first.weight', 4)[:2]
    depths = _depths(shapes)
    table = 'layers.{}.residual_group.blocks.0.attn.relative_position_bias_table'
    num_heads = [shapes.dims(table.format(i), 2)[1] for i in range(len(depths))]
    window_size, window_key = _window_size(shapes, group)
    overlap_size, overlap_key = _overlap_window_size(shapes, group, window_size)
    block = group + 'blocks.0.'
    settings = {
        'in_chans': in_chans,
        'embed_dim': embed_dim,
        'depths': depths,
        'num_heads': num_heads,
        'window_size': window_size,
        'overlap_ratio': _ratio(overlap_size - window_size, window_size),
        # The CAB widths are embed_dim // ratio; embed_dim // width is a ratio giving back that width.
        'compress_ratio': embed_dim // shapes.dims(block + 'conv_block.cab.0.weight', 4)[0],
        'squeeze_factor': embed_dim // shapes.dims(block + 'conv_block.cab.3.attention.1.weight', 4)[0],
        'mlp_ratio': _ratio(shapes.dims(block + 'mlp.fc1.weight', 2)[0], embed_dim),
        'qkv_bias': block + 'attn.qkv.bias' in shapes,
        'patch_norm': 'patch_embed.norm.weight' in shapes,
        'resi_connection': _resi_connection(shapes),
        **_reconstruction(shapes, name, embed_dim, in_chans),
    }
    origin = {'in_chans': 'conv_first.weight', 'embed_dim': 'conv_first.weight', 'window_size': window_key,
              'overlap_ratio': overlap_key, 'depths': 'the layers.N.residual_group.blocks.M keys',
              'num_heads': 'the relative_position_bias_table columns', 'mlp_ratio': block + 'mlp.fc1.weight',
              'upscale': 'the upsample weights'}
    check_limits(settings, name, origin)
    try:
        config = HATConfig(**settings)
    except (TypeError, ValueError) as error:
        raise HatError(f'{name} is not a HAT that can be built: {error}') from None
    _check_shapes(state_dict, config, name)
    return config


class _Shapes(dict):
    """A state dict's shapes; :meth:`dims` reads one that detection relies on, or says in one line what is wrong."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], name: str):
        super().__init__(shapes)
        self.name = name

    def dims(self, key: str, ndim: int) -> tuple[int, ...]:
        if key not in self:
            raise HatError(f'{self.name} is not a complete HAT checkpoint: it has no {key!r}')
        shape = self[key]
        if len(shape) != ndim or not all(shape):
            raise HatError(f'{self.name}: {key} has shape {shape}; a HAT has a {ndim}-dimensional one with no '
                           'empty dimension there')
        return shape


def _check_shapes(state_dict: dict[str, torch.Tensor], config: HATConfig, name: str) -> None:
    """HatError naming the first keys that are missing, unexpected or of another shape than ``config`` implies."""
    expected = expected_shapes(config.as_kwargs())
    for key in POSITION_INDEX_KEYS:  # rebuilt from the window sizes when the file has none
        if key not in state_dict:
            del expected[key]
    meta = {key: torch.empty(shape, device='meta') for key, shape in expected.items()}
    problem = describe_state_dict_mismatch(meta, state_dict)
    if problem:
        raise HatError(f'{name} is not a consistent HAT checkpoint: {problem}')


def _depths(shapes: _Shapes) -> list[int]:
    blocks: dict[int, set[int]] = {}
    for key in shapes:
        match = re.match(r'layers\.(\d+)\.residual_group\.blocks\.(\d+)\.', key)
        if match:
            blocks.setdefault(int(match[1]), set()).add(int(match[2]))
    last = max(blocks)
    if last >= MAX_SETTINGS['groups']:  # refused before a list that long is made (layers.100000000 is one key)
        raise HatError(f"{shapes.name}: depths asks for {last + 1} groups (from layers.{last}), more than the "
                       f"{MAX_SETTINGS['groups']} hat_arch allows")
    return [len(blocks.get(i, ())) for i in range(last + 1)]


def _window_size(shapes: _Shapes, group: str) -> tuple[int, str]:
    if 'relative_position_index_SA' in shapes:  # (ws*ws, ws*ws)
        return math.isqrt(shapes.dims('relative_position_index_SA', 2)[0]), 'relative_position_index_SA'
    # bias table rows: (2*ws - 1)^2
    key = group + 'blocks.0.attn.relative_position_bias_table'
    return (math.isqrt(shapes.dims(key, 2)[0]) + 1) // 2, key


def _overlap_window_size(shapes: _Shapes, group: str, window_size: int) -> tuple[int, str]:
    if 'relative_position_index_OCA' in shapes:  # (ws*ws, ows*ows)
        return math.isqrt(shapes.dims('relative_position_index_OCA', 2)[1]), 'relative_position_index_OCA'
    # bias table rows: (ws + ows - 1)^2
    key = group + 'overlap_attn.relative_position_bias_table'
    return math.isqrt(shapes.dims(key, 2)[0]) - window_size + 1, key

def _ratio(part: int, whole: int) -> int | float:
    """A ratio r with int(whole * r) == part, as the network computes widths; an int when exact."""
    if part % whole == 0:
        return part // whole
    ratio = part / whole
    return ratio if int(whole * ratio) == part else math.nextafter(ratio, math.inf)


def _resi_connection(shapes: _Shapes) -> str:
    if 'conv_after_body.weight' in shapes:
        return '1conv'
    return '3conv' if 'conv_after_body.0.weight' in shapes else 'identity'


def _reconstruction(shapes: _Shapes, name: str, embed_dim: int, in_chans: int) -> dict[str, Any]:
    """``upscale`` and ``upsampler`` from the reconstruction convs."""
    if 'conv_up1.weight' in shapes:
        return {'upsampler': 'nearest+conv', 'upscale': 4}
    if 'conv_before_upsample.0.weight' in shapes and 'upsample.0.weight' in shapes:
        # basicsr Upsample: a conv to 4x (then shuffle by 2) per factor 2, or one conv to 9x (shuffle by 3).
        scale = 1
        for key in shapes:
            if re.fullmatch(r'upsample\.\d+\.weight', key):
                scale *= math.isqrt(shapes.dims(key, 4)[0] // NUM_FEAT)
        return {'upsampler': 'pixelshuffle', 'upscale': scale}
    if 'upsample.0.weight' in shapes:  # one conv to scale^2 * in_chans, then one shuffle
        scale = math.isqrt(shapes.dims('upsample.0.weight', 4)[0] // in_chans)
        return {'upsampler': 'pixelshuffledirect', 'upscale': scale}
    if 'conv_last.weight' in shapes and shapes.dims('conv_last.weight', 4)[1] == embed_dim:
        return {'upsampler': '', 'upscale': 1}
    raise HatError(f'{name}: unknown HAT reconstruction layers (no conv_last, upsample or conv_up1 weights)')


def resolve_device(device: str | torch.device = 'auto') -> torch.device:
    """'auto' is the first CUDA GPU when there is one, else the CPU; anything else is passed to ``torch.device``."""
    if str(device) == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise HatError(f'unknown device {device!r}: {error}') from None
    if device.type == 'meta':  # tensors there have shapes but no values: every image would fail
        raise HatError("device 'meta' cannot compute (it holds no data); use 'cpu', 'cuda' or 'auto'")
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise HatError(f'device {device} asked for, but this PyTorch sees no CUDA GPU (use --device cpu)')
    if device.type == 'cuda' and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise HatError(f'device {device} asked for, but this machine has {count} CUDA GPU(s): '
                       f'cuda:0 to cuda:{count - 1}')
    return device


def load_model(path: str | Path | None = None, device: str | torch.device = 'auto', precision: str = 'fp32',
               **overrides: Any) -> HAT:
    """A HAT in eval mode on ``device`` with the weights of the checkpoint at ``path``; no option file needed. It is
    built for inference: no stochastic depth (``drop_path_rate=0`` unless overridden) and no weight initialisation.

    Args:
        path: a ``.pth`` or ``.safetensors`` checkpoint (released HAT / Real-HAT-GAN, or any BasicSR-trained HAT);
            None: the small x4 model shipped in the package (:mod:`hat_arch.shipped_model`).
        device: 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ...
        precision: 'fp32', 'bf16' or 'fp16' for the weights and the computation.
        overrides: ``HAT(...)`` arguments replacing detected or default ones, e.g. ``img_range=255.``,
            ``attn_impl='naive'``.
    """
    if precision not in PRECISIONS:
        raise HatError(f'precision {precision!r} is not one of {", ".join(PRECISIONS)}')
    device = resolve_device(device)
    path = checkpoint_or_shipped(path)
    state_dict = read_state_dict(path)
    # Stochastic depth does nothing in eval mode, and without it (and its initialisation) the network imports no timm.
    detected = detect_config(state_dict, name=str(path))
    try:
        config = detected.replace(drop_path_rate=0.0, **overrides)
    except (TypeError, ValueError) as error:
        raise HatError(f'{path}: cannot build HAT: {error}') from None
    with weights_loaded_after():
        model = HAT.from_config(config)
    load_weights(model, state_dict, f'checkpoint {path}')
    model.model_info = model_info(config, _count_parameters(state_dict), Path(path))
    return model.to(device=device, dtype=PRECISIONS[precision]).eval()


@dataclass(frozen=True)
class ModelInfo:
    """What a caller needs to know about a HAT (scale, channels, window, size, precisions), so that none reads the
    network's internals: read from a checkpoint's tensors, or made once when a model is loaded and kept with it
    (``model.model_info``), as spandrel's descriptors."""
    config: HATConfig  # the settings that rebuild it: HAT.from_config(config)
    name: str | None  # its name in hat_arch.list_models(), if its network is a named one
    scale: int
    in_chans: int
    window_size: int
    min_input_size: int  # smallest input side in pixels: the network reflect-pads any input to its window multiple
    precisions: tuple[str, ...]  # those it computes faithfully in (load_model accepts every one of PRECISIONS)
    num_params: int
    path: Path | None  # the checkpoint it was read from, if any

    def summary(self) -> str:
        """One line of the settings, e.g. 'HAT x4 (pixelshuffle): 3 channels, width 180, 6 x 6 blocks, window 16
        (the HAT_SRx4 network)'."""
        depths = self.config.depths
        blocks = f'{len(depths)} x {depths[0]}' if len(set(depths)) == 1 else str(list(depths))
        named = f' (the {self.name} network)' if self.name else ''
        return (f'HAT x{self.scale} ({self.config.upsampler or "no upsampler"}): {self.in_chans} channels, '
                f'width {self.config.embed_dim}, {blocks} blocks, window {self.window_size}{named}')


def model_info(config: HATConfig, num_params: int, path: Path | None = None, name: str | None = None) -> ModelInfo:
    """The :class:`ModelInfo` of a HAT of ``config`` with ``num_params`` parameters (read from ``path``), called
    ``name`` (by default, the first name of its network)."""
    name = name or name_of(config)
    precisions = NAMED_MODELS[name].precisions if name else HAT_PRECISIONS
    return ModelInfo(config=config, name=name, scale=config.upscale, in_chans=config.in_chans,
                     window_size=config.window_size, min_input_size=1, precisions=precisions,
                     num_params=num_params, path=path)


def describe(source: str | Path | HAT) -> ModelInfo:
    """The :class:`ModelInfo` of a checkpoint file (read, not built) or of a HAT: the one made when it was loaded,
    else one made now from its config and kept with it (remade only if the model's config changed since, e.g. by
    :meth:`~hat_arch.archs.hat_arch.HAT.set_attn_impl`)."""
    if isinstance(source, HAT):
        info = getattr(source, 'model_info', None)
        if info is None or info.config != source.config:
            num_params = sum(p.numel() for p in source.parameters())
            kept = (info.path, info.name) if info else (None, None)
            info = source.model_info = model_info(source.config, num_params, *kept)
        return info
    path = Path(source)
    state_dict = read_state_dict(path)
    return model_info(detect_config(state_dict, name=str(path)), _count_parameters(state_dict), path)


def _count_parameters(state_dict: dict[str, torch.Tensor]) -> int:
    return sum(tensor.numel() for key, tensor in state_dict.items() if key not in POSITION_INDEX_KEYS)
