"""``basicsr train|test`` flags and option files: checked up front, then parsed by BasicSR's ``parse_options``.

The flags are BasicSR's (``-opt``, ``--launcher``, ``--auto_resume``, ``--debug``, ``--local_rank``, ``--force_yml``)
plus ``--local-rank``, which ``python -m torch.distributed.launch`` passes and BasicSR rejects. A missing or
unreadable option file or a ``--force_yml`` entry naming no option is a one-line :class:`HatError`; the file's own
problems (an unknown top-level key, a typo BasicSR would silently ignore; a missing required key; a value that its
network, optimizer, scheduler or metric refuses) are collected in a :class:`~hat_arch.problems.Problems` and reported
together, one line each. The process group is joined before BasicSR
parses the file (so its seeding uses the right rank), with the backend of ``dist_params: backend`` if given.
"""
from __future__ import annotations

import argparse
import contextlib
import inspect
import io
import os
import re
import sys
from types import SimpleNamespace

import torch
import yaml
from basicsr.utils.options import ordered_yaml
from basicsr.utils.options import parse_options as basicsr_parse_options
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

from hat_arch.archs.config import HATConfig
from hat_arch.data.checks import path_kind
from hat_arch.errors import HatError, did_you_mean
from hat_arch.inference import check_tile_size
from hat_arch.network_cost import check_limits
from hat_arch.problems import Problems
from hat_arch.training.distributed import init_dist, is_distributed

# Top-level keys of BasicSR, HAT and Real-ESRGAN/Real-HAT option files ('network_*' are all accepted).
KNOWN_KEYS = frozenset({
    'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'datasets', 'path', 'train', 'val', 'logger',
    'dist_params', 'find_unused_parameters', 'tile',
    # Real-ESRGAN / Real-HAT: on-the-fly degradations, USM sharpening of the ground truth, training pair pool
    'gt_size', 'queue_size', 'high_order_degradation', 'gt_usm', 'l1_gt_usm', 'percep_gt_usm', 'gan_gt_usm',
    'resize_prob', 'resize_range', 'gaussian_noise_prob', 'noise_range', 'poisson_scale_range', 'gray_noise_prob',
    'jpeg_range', 'second_blur_prob', 'resize_prob2', 'resize_range2', 'gaussian_noise_prob2', 'noise_range2',
    'poisson_scale_range2', 'gray_noise_prob2', 'jpeg_range2',
})
REQUIRED_KEYS = ('name', 'model_type', 'scale', 'num_gpu', 'datasets', 'path')
REQUIRED_TRAIN_KEYS = {'train': ('total_iter',), 'logger': ('print_freq', 'save_checkpoint_freq')}
DIST_PARAMS = ('backend', 'port')
MAPPINGS = ('datasets', 'path', 'train', 'val', 'logger', 'dist_params', 'tile')
VAL_SWITCHES = ('save_img', 'pbar', 'self_ensemble')
KINDS_OF_VALUE = {bool: 'true or false', int: 'an integer', str: 'text'}
TILE_KEYS = ('tile_size', 'tile_pad')  # HATModel's tiled validation/test (tile_size 0 or null: whole images; auto)
FORCE_YML_ENTRY = re.compile(r'^[\w.-]+(:[\w.-]+)*=')
# A number with an exponent, which YAML 1.1 (PyYAML, BasicSR) reads as text unless it has a dot and a signed
# exponent: 1e-4, 2E5 and 1.0e4 are strings, 1.0e-4 is a float. BasicSR's --force_yml reads them as text too.
NUMBER_READ_AS_TEXT = re.compile(r'[-+]?(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)[eE][-+]?\d+')
# Values an option file may hold once its aliases are expanded; the largest recipe holds a few hundred. Nine levels of
# '&a [*b, *b, ...]' load as a small shared graph but expand to billions: every walk over the options would hang.
MAX_OPTION_VALUES = 100_000
# Iteration counts beyond any training (the longest recipes run 800k): BasicSR's log turns 1e30 iterations into an
# ETA that overflows (OverflowError, a 252-line traceback) once training has started.
MAX_ITERATIONS = 10**9


def build_parser(prog: str, is_train: bool) -> argparse.ArgumentParser:
    action = 'Train' if is_train else 'Test'
    parser = argparse.ArgumentParser(
        prog=prog, description=f'{action} with a BasicSR option file; HAT and hat_arch\'s models are registered. '
        f'The current directory is the root: {"experiments/ and tb_logger/" if is_train else "results/"} land there.')
    parser.add_argument('-opt', required=True, metavar='YML', help='option file (YAML)')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: one process; pytorch: started by torchrun; slurm: started by srun')
    parser.add_argument('--auto_resume', '--auto-resume', action='store_true',
                        help='resume from the newest complete state in experiments/<name>/training_states')
    parser.add_argument('--debug', action='store_true', help="name 'debug_<name>': log, validate and save often")
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0,
                        help='passed by torch.distributed.launch; the rank is read from the environment')
    parser.add_argument('--force_yml', '--force-yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override options, e.g. train:ema_decay=0.999 (the parent key must exist)')
    return parser


def read_option_file(path: str) -> dict:
    """The option file as BasicSR reads it (ordered mappings)."""
    if not os.path.isfile(path):  # a FIFO or a device would block or never end
        kind = path_kind(path)
        raise HatError(f'option file {path} ' + ('does not exist' if kind == 'nothing' else f'is {kind}, not a file'))
    try:
        with open(path, encoding='utf-8') as file:
            loader = ordered_yaml()[0](file)
            try:
                node = loader.get_single_node()
                check_expanded_size(node, path)
                opt = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise HatError(f'option file {path} is not readable YAML: {" ".join(str(error).split())}') from error
    except RecursionError:  # PyYAML composes nested lists and mappings recursively
        raise HatError(f'option file {path} is nested too deeply to be options') from None
    if not isinstance(opt, dict):
        raise HatError(f'option file {path} holds no options (expected a mapping of keys such as name, datasets)')
    return opt


def check_expanded_size(node: yaml.Node | None, path: str) -> None:
    """HatError if the YAML node graph, with every alias expanded, holds more than :data:`MAX_OPTION_VALUES` nodes or
    refers to itself; measured on the composed graph, before anything is built from it."""
    sizes: dict[int, int] = {}
    expanding: set[int] = set()

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in expanding:
            raise HatError(f'option file {path}: an alias refers to the value that holds it (line '
                           f'{current.start_mark.line + 1}); options cannot be recursive')
        expanding.add(key)
        children = current.value if isinstance(current, yaml.SequenceNode) else [
            part for pair in current.value for part in pair] if isinstance(current, yaml.MappingNode) else []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_OPTION_VALUES:
                raise HatError(f'option file {path}: its aliases (*name) expand to more than {MAX_OPTION_VALUES} '
                               f'values (from line {current.start_mark.line + 1}); write the options out instead')
        expanding.discard(key)
        sizes[key] = total
        return total

    if node is not None:
        size(node)


def check_options(opt: dict, path: str, is_train: bool, problems: Problems | None = None) -> None:
    """Unknown top-level keys, missing required ones and the values that can be checked before BasicSR parses the file,
    each a one-line message naming the file and key: added to ``problems``, or without it raised together.

    A file whose structure BasicSR cannot parse (a required key missing, a section that is not a mapping) raises at
    once, with what was found so far."""
    found = Problems() if problems is None else problems
    for key in opt:
        if key not in KNOWN_KEYS and not str(key).startswith('network_'):
            found.add(f"option file {path}: unknown top-level key '{key}'{did_you_mean(key, KNOWN_KEYS)}")
    before = len(found)
    required = REQUIRED_KEYS + (tuple(REQUIRED_TRAIN_KEYS) if is_train else ('val',))
    missing = [key for key in required if key not in opt]
    if missing:
        found.add(f'option file {path}: missing required key(s) {", ".join(missing)}')
    for key in MAPPINGS:
        if key in opt and not isinstance(opt[key], dict):
            found.add(f'option file {path}: {key} must be a mapping of options, got {opt[key]!r}')
    datasets = opt.get('datasets')
    if isinstance(datasets, dict) and (not datasets or not all(isinstance(d, dict) for d in datasets.values())):
        found.add(f'option file {path}: datasets must map phases (train, val, test_1, ...) to datasets')
    if len(found) > before:  # nothing below can be checked on such a structure
        found.raise_if_any(f'option file {path}')
    if is_train:
        _check_train_options(opt, path, found)
    for key in opt.get('dist_params') or {}:
        if key not in DIST_PARAMS:
            found.add(f"option file {path}: unknown key dist_params: {key} (expected {', '.join(DIST_PARAMS)})")
    network = opt.get('network_g') if isinstance(opt.get('network_g'), dict) else {}
    _check_tile_options(opt.get('tile') or {}, path, network.get('window_size'), found)
    _check_registered(opt, path, found)
    _check_validation(opt.get('val') or {}, path, found)
    if problems is None:
        found.raise_if_any(f'option file {path}')


def _check_registered(opt: dict, path: str, problems: Problems) -> None:
    """Every ``type`` the options name is in its BasicSR registry (with hat_arch's): checked here, not when the model
    is built or at the first validation, ``val_freq`` iterations into training."""
    named = [('model_type', opt.get('model_type'), MODEL_REGISTRY)]
    named += [(f'{key}: type', section.get('type'), ARCH_REGISTRY) for key, section in opt.items()
              if str(key).startswith('network_') and isinstance(section, dict)]
    named += [(f'datasets: {phase}: type', dataset.get('type'), DATASET_REGISTRY)
              for phase, dataset in opt['datasets'].items()]
    named += [(f'train: {key}: type', section.get('type'), LOSS_REGISTRY)
              for key, section in (opt.get('train') or {}).items()
              if str(key).endswith('_opt') and isinstance(section, dict)]
    metrics = (opt.get('val') or {}).get('metrics') or {}
    named += [(f'val: metrics: {name}: type', metric.get('type') if isinstance(metric, dict) else None, METRIC_REGISTRY)
              for name, metric in metrics.items()]
    for where, kind, registry in named:
        if not _registered(registry, kind):
            hint = did_you_mean(kind, [name for name, _ in registry])
            problems.add(f'option file {path}: {where} {kind!r} is not registered in BasicSR or hat_arch{hint}')


def _check_validation(val: dict, path: str, problems: Problems) -> None:
    """What validation uses, checked now rather than at the first validation, ``val_freq`` iterations into training:
    its switches, and each metric's arguments against the function that computes it (BasicSR calls it as
    ``function(img=..., img2=..., **arguments)``, ``better`` included, which ``**kwargs`` absorbs)."""
    for key in VAL_SWITCHES:
        if key in val and not isinstance(val[key], bool):
            problems.add(f'option file {path}: val: {key} must be true or false, got {val[key]!r}')
    if val.get('suffix') is not None and not isinstance(val['suffix'], str):
        problems.add(f"option file {path}: val: suffix must be text (or null), got {val['suffix']!r}")
    metrics = val.get('metrics') or {}
    if not isinstance(metrics, dict):
        problems.add(f'option file {path}: val: metrics must map names to metrics (e.g. psnr: {{type: '
                     f'calculate_psnr, crop_border: 4}}), got {metrics!r}')
        return
    for name, metric in metrics.items():
        if isinstance(metric, dict) and _registered(METRIC_REGISTRY, metric.get('type')):  # else _check_registered
            with problems.collect():
                _check_metric_arguments(metric, f'option file {path}: val: metrics: {name}')


def _check_metric_arguments(metric: dict, where: str) -> None:
    kind = metric['type']
    signature = inspect.signature(METRIC_REGISTRY.get(kind))
    parameters = signature.parameters
    named = [n for n, p in parameters.items() if n not in ('img', 'img2') and p.kind is not p.VAR_KEYWORD]
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    if metric.get('better', 'higher') not in ('higher', 'lower'):
        raise HatError(f"{where}: better must be higher or lower, got {metric['better']!r}")
    arguments = {key: value for key, value in metric.items() if key not in ('type', 'better')}
    for key, value in arguments.items():
        hint = did_you_mean(key, named)
        if key not in parameters and (hint or not takes_any):  # **kwargs would swallow a misspelt name unseen
            takes = hint or f" (it takes {', '.join(named)})"
            raise HatError(f"{where}: {kind} has no argument '{key}'{takes}")
        expected = _expected_kind(key, value, parameters[key].default if key in parameters else None)
        if expected:
            raise HatError(f'{where}: {key} must be {expected}, got {value!r}')
    try:
        signature.bind(img=None, img2=None, **arguments)
    except TypeError as error:
        raise HatError(f'{where}: {kind} {error}') from None


def _expected_kind(key: str, value, default) -> str | None:
    """What a metric argument should be, if ``value`` is not that: a non-negative integer for ``crop_border`` (which
    crops ``img[crop_border:-crop_border]``), else the kind of its default (true/false, integer, text)."""
    if key == 'crop_border':
        return None if type(value) is int and value >= 0 else 'a non-negative integer'
    kind = type(default)
    return KINDS_OF_VALUE[kind] if kind in KINDS_OF_VALUE and not isinstance(value, kind) else None


def _registered(registry, name) -> bool:
    # As Registry.get finds it: BasicSR also tries NAME_basicsr (its UNetDiscriminatorSN is registered so).
    return isinstance(name, str) and (name in registry or f'{name}_basicsr' in registry)


def _check_tile_options(tile: dict, path: str, window_size: int | None, problems: Problems) -> None:
    # Checked here, not at the first validation, which may come hours into training.
    for key, value in tile.items():
        if key not in TILE_KEYS:
            problems.add(f"option file {path}: unknown key tile: {key} (expected {', '.join(TILE_KEYS)})")
        elif key == 'tile_size':
            try:
                check_tile_size(value, window_size if type(window_size) is int else None)
            except HatError as error:
                problems.add(f'option file {path}: tile: tile_size: {error}')
        elif value is not None and (type(value) is not int or value < 0):
            problems.add(f'option file {path}: tile: {key} must be a non-negative integer (or null), got {value!r}')


def _check_train_options(opt: dict, path: str, problems: Problems) -> None:
    for phase in opt['datasets']:
        if phase != 'train' and phase.split('_')[0] != 'val':
            problems.add(f"option file {path}: datasets: unknown phase '{phase}' (expected train, val, val_2, ...)")
    if 'train' not in opt['datasets']:
        problems.add(f'option file {path}: datasets has no train dataset')
    counts = [(section, key) for section, keys in REQUIRED_TRAIN_KEYS.items() for key in keys]
    for section, key in counts + [('val', 'val_freq')] * bool(opt.get('val')):
        if key not in opt[section]:
            problems.add(f'option file {path}: missing required key {section}: {key}')
            continue
        value = opt[section][key]
        whole = type(value) is int or (type(value) is float and value.is_integer())
        if not whole and _number_read_as_text(value):  # check_numbers says so, with the fix
            continue
        if not whole or value < 1:  # YAML reads 1e5 as a string: it would fail at the first use, mid-run
            problems.add(f'option file {path}: {section}: {key} must be a positive whole number (e.g. 100000), '
                         f'got {value!r}')
        elif value > MAX_ITERATIONS:
            problems.add(f'option file {path}: {section}: {key} {value!r} is more than the {MAX_ITERATIONS} '
                         'iterations hat_arch allows')


def _check_prefetch_mode(dataset: dict, path: str, problems: Problems) -> None:
    mode = dataset.get('prefetch_mode')
    if mode not in (None, 'cpu', 'cuda'):
        problems.add(f'option file {path}: datasets: train: prefetch_mode {mode!r}: expected cpu or cuda (or none)')
    if mode == 'cuda' and not torch.cuda.is_available():
        problems.add(f'option file {path}: datasets: train: prefetch_mode cuda needs a GPU and none is visible '
                     '(use cpu, or none)')
    if mode == 'cuda' and dataset.get('pin_memory') is not True:
        problems.add(f'option file {path}: datasets: train: prefetch_mode cuda needs pin_memory: true')


def check_networks(opt: dict, path: str, problems: Problems) -> None:
    """The arguments of each HAT of the options are made into its :class:`HATConfig` (no layer is made), so that a
    value HAT refuses (upsampler, window_size, num_heads, a wrong type, an unknown argument) is one line here, not a
    traceback at start-up."""
    for key, section in opt.items():
        if str(key).startswith('network_') and isinstance(section, dict) and section.get('type') == 'HAT':
            try:
                config = HATConfig.from_options({k: v for k, v in section.items() if k != 'type'})
            except (TypeError, ValueError) as error:
                problems.add(f'option file {path}: {key}: {error}')
                continue
            with problems.collect():  # sizes within hat_arch's limits and the memory there is, before it is built
                check_limits(config.as_kwargs(), f'option file {path}: {key}')


def check_optimization(opt: dict, path: str, problems: Problems) -> None:
    """The optimizers and the scheduler of ``train`` are made once for a dummy parameter, as the model will make them:
    an unknown type or a setting torch refuses is one line naming its section."""
    if not _registered(MODEL_REGISTRY, opt['model_type']):  # said by check_options
        return
    model_class = MODEL_REGISTRY.get(opt['model_type'])
    optimizers = []
    for key, section in opt['train'].items():
        if not (str(key).startswith('optim_') and isinstance(section, dict)) or _holds_number_read_as_text(section):
            continue  # (check_numbers says so: one problem, one line)
        settings = dict(section)
        kind = settings.pop('type', None)
        try:
            optimizers.append(model_class.get_optimizer(None, kind, [torch.zeros(1, requires_grad=True)], **settings))
        except NotImplementedError as error:
            problems.add(f"option file {path}: train: {key}: type {kind!r} is not an optimizer that "
                         f"{opt['model_type']} builds ({error})")
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as error:  # betas: [0.9] is an IndexError
            problems.add(f'option file {path}: train: {key}: the {kind} optimizer refuses these settings: {error}')
    if not isinstance(opt['train'].get('scheduler'), dict):
        problems.add(f'option file {path}: train: scheduler must be a mapping with a type (e.g. MultiStepLR), got '
                     f"{opt['train'].get('scheduler')!r}")
        return
    if not _holds_number_read_as_text(opt['train']['scheduler']):
        with problems.collect():
            _check_scheduler(model_class, optimizers, opt, path)


def _number_read_as_text(value) -> bool:
    return isinstance(value, str) and NUMBER_READ_AS_TEXT.fullmatch(value) is not None


def _holds_number_read_as_text(node) -> bool:
    values = node.values() if isinstance(node, dict) else node if isinstance(node, list) else [node]
    return any(_holds_number_read_as_text(v) if isinstance(v, (dict, list)) else _number_read_as_text(v)
               for v in values)


def _check_scheduler(model_class, optimizers: list, opt: dict, path: str) -> None:
    scheduler = dict(opt['train']['scheduler'])
    try:  # setup_schedulers takes the type out of the options it is given: a copy
        model_class.setup_schedulers(SimpleNamespace(opt={'train': {'scheduler': scheduler}}, optimizers=optimizers,
                                                     schedulers=[]))
    except NotImplementedError as error:
        raise HatError(f'option file {path}: train: scheduler: {error}') from None
    except (TypeError, ValueError, KeyError, IndexError, AssertionError, OverflowError) as error:
        raise HatError(f"option file {path}: train: scheduler: the {opt['train']['scheduler'].get('type')} scheduler "
                       f'refuses these settings: {error}') from None


def check_numbers(node, path: str, problems: Problems, where: str = '') -> None:
    """No option holds a number that YAML read as text (``lr: 1e-4``): torch would fail on it with a bare
    TypeError, or a loss weight would be a string, at the first use."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        at = f'{where}[{key}]' if isinstance(node, list) else f'{where}: {key}' if where else str(key)
        if key != 'name' and _number_read_as_text(value):
            problems.add(f'option file {path}: {at} is the text {value!r}, not a number (YAML reads an exponent '
                         f'only after a dot and with a sign): write !!float {value}')
        check_numbers(value, path, problems, at)


def check_force_yml(entries: list[str] | None, opt: dict) -> None:
    """Each ``--force_yml`` entry must be ``a:b:c=value`` with an existing ``a:b`` (BasicSR execs it otherwise)."""
    for entry in entries or []:
        if not FORCE_YML_ENTRY.match(entry) or entry.count('=') != 1:
            raise HatError(f'--force_yml {entry}: expected KEY=VALUE with KEY like train:ema_decay')
        keys = entry.split('=')[0].split(':')
        node = opt
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                raise HatError(f"--force_yml {entry}: the option file has no {':'.join(keys[:depth + 1])}")
            node = node[key]
        if not isinstance(node, dict):
            raise HatError(f"--force_yml {entry}: {':'.join(keys[:-1])} is not a mapping")


def parse_options(argv: list[str], root_path: str, is_train: bool, prog: str,
                  problems: Problems | None = None) -> tuple[dict, argparse.Namespace]:
    """Check the flags and option file, join the process group, then return BasicSR's ``parse_options`` result.

    The option file's problems are added to ``problems`` for the caller to raise with its own (the data checks), or
    without it raised together here.
    """
    args = build_parser(prog, is_train).parse_args(argv)
    found = Problems() if problems is None else problems
    raw = read_option_file(args.opt)
    check_options(raw, args.opt, is_train, found)
    check_force_yml(args.force_yml, raw)
    if args.launcher == 'none' and int(os.environ.get('WORLD_SIZE', '1')) > 1:
        raise HatError(f'started as one of {os.environ["WORLD_SIZE"]} processes (WORLD_SIZE) but with --launcher '
                       'none: add --launcher pytorch, or every process trains on its own and they overwrite each other')
    if args.launcher != 'none' and not is_distributed():
        init_dist(args.launcher, **dict(raw.get('dist_params') or {}))
    flags = ['-opt', args.opt, '--launcher', 'none']  # the process group is already joined
    flags += ['--auto_resume'] * args.auto_resume + ['--debug'] * args.debug
    flags += ['--force_yml', *args.force_yml] if args.force_yml else []
    saved_argv, sys.argv = sys.argv, [prog, *flags]
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # BasicSR prints 'Disable distributed.'
            opt, _ = basicsr_parse_options(root_path, is_train=is_train)
    finally:
        sys.argv = saved_argv
    # After --force_yml, whose values BasicSR reads as YAML does
    check_numbers(opt, f'{args.opt} with --force_yml' if args.force_yml else args.opt, found)
    check_networks(opt, args.opt, found)
    if is_train:
        check_optimization(opt, args.opt, found)
        _check_prefetch_mode(opt['datasets'].get('train') or {}, args.opt, found)
    opt['dist'] = args.launcher != 'none'
    if opt['num_gpu'] and not torch.cuda.is_available():
        found.add(f'option file {args.opt}: num_gpu is {opt["num_gpu"]} but no GPU is visible '
                  '(set num_gpu: 0 or auto to run on the CPU)')
    if is_train:
        opt['logger'].setdefault('use_tb_logger', False)
    if problems is None:
        found.raise_if_any(f'option file {args.opt}')
    return opt, args
