"""Teach Ultralytics' model parser the ``HAT`` row, without editing any Ultralytics file.

``parse_model`` (``ultralytics.nn.tasks``) looks a row's module up by name in its module's globals and passes the
input channels only to the modules it knows. :func:`register` puts :class:`~hat_arch.yolo.block.HATBlock` there and
wraps ``parse_model``: a YAML with ``HAT`` rows is parsed once with each of them as an ``nn.Identity`` (channels pass
through unchanged, as through HAT) to learn the channels they receive from one small forward, then parsed for real
with ``HATBlock(c1, *args)`` in their place. Everything the hook relies on is checked, at registration and after each
build: a parser it does not recognise fails loudly; a ``HAT`` row never becomes an identity.
"""
from __future__ import annotations

import copy
import functools
import inspect
from typing import Any, Callable

import torch
from torch import nn

from hat_arch.errors import HatError
from hat_arch.yolo import safe_load, scaled_names
from hat_arch.yolo.block import HATBlock, resolve_options

ROW_NAME = 'HAT'  # what model YAMLs write
BLOCK_NAME = 'HATBlock'  # what the hooked parser builds: its globals entry
PROBE_SIZE = 64  # side of the zero image that measures channels: a multiple of every YOLO stride up to P6
PARSER_ARGS = ('d', 'ch', 'verbose')
MAX_REPEATS = 16  # a row's n: that many HAT blocks in a chain


class UnhookedHAT(nn.Module):
    """What a ``HAT`` row builds if the parser ran without the hook: an error, never a block without its channels."""

    def __init__(self, *args: Any):
        super().__init__()
        raise _unsupported("a model YAML's HAT row was parsed without hat_arch's parse_model hook (this version "
                           'builds models some other way)')


def _version() -> str:
    import ultralytics

    return f'Ultralytics {ultralytics.__version__}'


def _unsupported(what: str) -> HatError:
    return HatError(f'{_version()} is not supported by hat_arch.yolo: {what}')


def check_parser(tasks: Any) -> Callable:
    """``tasks.parse_model`` if it is a parser this hook understands, else a :class:`HatError`."""
    parse_model = getattr(tasks, 'parse_model', None)
    if not callable(parse_model):
        raise _unsupported('ultralytics.nn.tasks has no parse_model')
    if getattr(parse_model, 'hat_arch_hook', False):  # registered before: check the parser it wraps
        parse_model = parse_model.__wrapped__
    try:
        names = tuple(inspect.signature(parse_model).parameters)
    except (TypeError, ValueError):
        names = ()
    if names[:len(PARSER_ARGS)] != PARSER_ARGS:
        raise _unsupported(f'parse_model takes {names}, not {PARSER_ARGS}')
    try:
        source = inspect.getsource(parse_model)
    except OSError:  # installed without sources: the checks after each build are the guard
        return parse_model
    if 'globals()[m]' not in source or 'startswith("nn.")' not in source:
        raise _unsupported('parse_model no longer looks modules up by name in its globals')
    return parse_model


def _hat_rows(d: dict) -> list[int]:
    rows = [i for i, row in enumerate(d['backbone'] + d['head']) if row[2] == ROW_NAME]
    for i in rows:
        source, repeats = (d['backbone'] + d['head'])[i][:2]
        if not isinstance(source, int):
            raise HatError(f'{_where(d, i)}: HAT takes one input layer, got from={source}')
        if type(repeats) is not int or not 1 <= repeats <= MAX_REPEATS:
            raise HatError(f'{_where(d, i)}: HAT repeated {repeats!r} times; hat_arch builds 1 to {MAX_REPEATS} '
                           'blocks in a row')
    return rows


def _with_rows(d: dict, rows: dict[int, tuple[str, list]]) -> dict:
    """A copy of the model dict ``d`` with the rows numbered in ``rows`` given another module and arguments."""
    d = copy.deepcopy(d)
    n_backbone = len(d['backbone'])
    for i, (module, args) in rows.items():
        part, j = ('backbone', i) if i < n_backbone else ('head', i - n_backbone)
        d[part][j] = [d[part][j][0], d[part][j][1], module, args]
    return d


def _input_channels(layers: nn.Sequential, rows: list[int], ch: int) -> dict[int, int]:
    """The channels that reach each row in ``rows``, from a forward of a zero image (as Ultralytics measures strides),
    routed like ``BaseModel._predict_once``; it stops at the last of them."""
    channels, outputs = {}, []
    x = torch.zeros(1, ch, PROBE_SIZE, PROBE_SIZE)
    layers.eval()  # batch statistics of one 1x1 map do not exist; eval uses the running ones
    with torch.no_grad():
        for layer in layers:
            if layer.f != -1:
                x = outputs[layer.f] if isinstance(layer.f, int) else [x if j == -1 else outputs[j] for j in layer.f]
            if layer.i in rows:
                channels[layer.i] = x.shape[1]
                if len(channels) == len(rows):
                    break
            x = layer(x)
            outputs.append(x)
    return channels


def _where(d: dict, i: int) -> str:
    return f"{d.get('yaml_file') or 'model YAML'} layer {i}"


def hooked_parse_model(parse_model: Callable) -> Callable:
    """``parse_model`` that builds ``HAT`` rows as ``HATBlock(c1, *args)``, ``c1`` from the graph."""

    @functools.wraps(parse_model)
    def parse(d: dict, ch: int, verbose: bool = True, *args: Any, **kwargs: Any):
        rows = _hat_rows(d)
        if not rows:
            return parse_model(d, ch, verbose, *args, **kwargs)
        placeholders, _ = parse_model(_with_rows(d, {i: ('nn.Identity', []) for i in rows}), ch, False, *args,
                                      **kwargs)
        if any(getattr(placeholders[i], 'i', None) != i or not hasattr(placeholders[i], 'f') for i in rows):
            raise _unsupported('parse_model did not keep the layer order and routing (.i, .f) of its model YAML')
        channels = _input_channels(placeholders, rows, ch)
        real = {}
        for i in rows:
            row_args = (d['backbone'] + d['head'])[i][3]
            try:
                resolve_options(channels[i], row_args)
            except HatError as error:
                raise HatError(f'{_where(d, i)}: {error}') from None
            real[i] = (BLOCK_NAME, [channels[i], *row_args])
        model, save = parse_model(_with_rows(d, real), ch, verbose, *args, **kwargs)
        for i in rows:
            blocks = model[i] if isinstance(model[i], nn.Sequential) else [model[i]]
            if not all(isinstance(b, HATBlock) and b.in_channels == channels[i] for b in blocks):
                raise _unsupported(f'{_where(d, i)} was not built as a HATBlock on {channels[i]} channels')
        return model, save

    parse.hat_arch_hook = True
    return parse


def safe_globals() -> list[type]:
    """The classes a pickled ``HATBlock`` references (its modules and HAT's config), for
    ``torch.load(weights_only=True)``: Ultralytics' ``ULTRALYTICS_SAFE_LOAD`` loading allows only known classes."""
    probe = HATBlock(1, {'embed_dim': 4, 'num_heads': [1], 'depths': [1], 'compress_ratio': 1, 'squeeze_factor': 1,
                         'drop_path_rate': 0.1})  # every module type a YAML can ask for
    return [*{type(m) for m in probe.modules()}, type(probe.hat.config)]  # HAT keeps its HATConfig


def register() -> None:
    """Make ``HAT`` rows of Ultralytics model YAMLs build :class:`HATBlock`, scaled YAML names load from any
    folder and the shipped ones by bare name, and checkpoints load without running code
    (:mod:`hat_arch.yolo.safe_load`); idempotent."""
    import ultralytics.nn
    from ultralytics.engine import model as engine_model
    from ultralytics.nn import tasks

    scaled_names.patch(tasks, engine_model, ultralytics.nn)
    safe_load.patch(tasks)

    parse_model = check_parser(tasks)
    if not getattr(tasks.parse_model, 'hat_arch_hook', False):
        tasks.parse_model = hooked_parse_model(parse_model)
    setattr(tasks, ROW_NAME, UnhookedHAT)
    setattr(tasks, BLOCK_NAME, HATBlock)
    torch.serialization.add_safe_globals(safe_globals())
