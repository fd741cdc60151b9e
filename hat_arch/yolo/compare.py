"""``hat-yolo compare``: train a plain YOLO model and its HAT layouts over several seeds on one data set, and tabulate
mean and spread of their accuracy beside their cost.

Each (model, seed) run is Ultralytics' own training (``YOLO(model).train(seed=k, ...)``) in a process of its own, so
that its peak memory is its own, into ``<project>/<name>/<model>/seed<k>/``. A finished run leaves
``hat_compare.json`` (metrics of its best.pt as the trainer's final validation reports them, parameters, GFLOPs,
seconds per training epoch, peak memory) and is skipped when the command runs again; an interrupted one is resumed
from its ``last.pt``. The settings that decide the numbers (data, epochs, image size, the other training arguments)
are recorded in ``compare.json`` at the first run: a later call with other settings is refused instead of mixing
runs that cannot be compared; more seeds or models may be added.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hat_arch.errors import HatError, did_you_mean, first_line
from hat_arch.atomic_write import write_json_atomic, write_text_atomic
from hat_arch.folder_lock import holding_folder

SYNTHETIC = 'synthetic'
DEFAULT_MODELS = ('yolo11n.yaml', 'yolo11n-hat-neck.yaml')
RESULT = 'hat_compare.json'
EPOCH_TIMES = 'hat_compare_epochs.json'
SETTINGS = 'compare.json'
# Training arguments every run gets unless the command names them: no plots (they fetch a font online and cost
# time), nothing else that changes what is learned.
QUIET_DEFAULTS = {'plots': False}


@dataclass
class Comparison:
    """What to train: each of ``models`` once per seed, all with the same data and arguments."""

    data: str = SYNTHETIC
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    epochs: int = 5
    imgsz: int = 128
    project: str = 'runs/compare'
    name: str | None = None
    train_args: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return Path(self.project) / (self.name or Path(self.data).stem)

    def settings(self, data: str) -> dict[str, Any]:
        """The settings the numbers depend on (the same for every run of the comparison)."""
        return {'data': data, 'epochs': self.epochs, 'imgsz': self.imgsz,
                'train_args': {**QUIET_DEFAULTS, **self.train_args}}


def parse_arguments(argv: list[str]) -> Comparison:
    """``key=value`` arguments as Ultralytics' CLI takes them: this command's own (data, models, seeds, epochs,
    imgsz, project, name) and any training argument, given to every run."""
    from ultralytics.cfg import smart_value

    comparison, own = Comparison(), {'data', 'models', 'seeds', 'epochs', 'imgsz', 'project', 'name'}
    for argument in argv:
        key, sep, value = argument.partition('=')
        if not sep or not key or not value:
            raise HatError(f'compare takes key=value arguments, got {argument!r}')
        if key == 'models':
            comparison.models = [m.strip() for m in value.split(',') if m.strip()]
        elif key == 'seeds':
            seeds = [s.strip() for s in value.split(',')]
            if not all(s.lstrip('-').isdigit() for s in seeds):
                raise HatError(f'seeds={value!r}: give a count (seeds=3 is 0,1,2) or a list (seeds=0,4,7)')
            comparison.seeds = list(range(int(seeds[0]))) if len(seeds) == 1 else [int(s) for s in seeds]
        elif key in ('epochs', 'imgsz'):
            if not value.isdigit() or int(value) < 1:
                raise HatError(f'{key}={value!r} must be a positive whole number')
            setattr(comparison, key, int(value))
        elif key in own:
            setattr(comparison, key, value)
        else:
            comparison.train_args[key] = smart_value(value)
    if not comparison.seeds or len(set(comparison.seeds)) != len(comparison.seeds):
        raise HatError(f'seeds must name at least one seed, each once; got {comparison.seeds}')
    stems = [Path(m).stem for m in comparison.models]
    if len(comparison.models) < 1 or len(set(stems)) != len(stems):
        raise HatError(f'models must name at least one model, each with its own file name; got {comparison.models}')
    return comparison


def check_start(comparison: Comparison) -> None:
    """Everything that would fail a run, found before the first one starts: a missing data YAML, training arguments
    Ultralytics does not know or cannot take, models that do not build."""
    from ultralytics import YOLO
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    import hat_arch.yolo  # noqa: F401  (registers HAT and the shipped names)

    if comparison.data != SYNTHETIC and not Path(comparison.data).is_file():
        raise HatError(f'data={comparison.data!r}: no such data YAML (data=synthetic draws a small set to try the '
                       'command)')
    forbidden = {'seed', 'resume', 'project', 'name', 'exist_ok', 'model', 'mode'} & set(comparison.train_args)
    if forbidden:
        raise HatError(f"compare sets {', '.join(sorted(forbidden))} itself for each run")
    for key in comparison.train_args:
        if key not in DEFAULT_CFG_DICT:
            raise HatError(f'{key!r} is not an Ultralytics training argument{did_you_mean(key, DEFAULT_CFG_DICT)}')
    try:
        check_cfg({**comparison.train_args})
    except (SyntaxError, TypeError, ValueError) as error:
        raise HatError(f'training arguments: {first_line(str(error).strip())}') from None
    for model in comparison.models:
        if not model.endswith(('.yaml', '.yml')):
            raise HatError(f'models: {model!r} is not a model YAML; a comparison trains each model from scratch')
        try:
            YOLO(model)
        except FileNotFoundError as error:
            raise HatError(f'models: {model}: {first_line(str(error).strip())}') from None


def holding(folder: Path) -> AbstractContextManager[None]:
    """An exclusive hold on ``folder`` (made if missing) while a comparison runs in it: a second one there is
    refused."""
    folder.mkdir(parents=True, exist_ok=True)
    return holding_folder(folder, ['hat-yolo', 'compare', f'name={folder.name}'],
                          'wait for it to end or stop it, or choose another name=')


def check_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Record ``settings`` in a new comparison folder, or refuse ones that differ from those it was started with."""
    path = folder / SETTINGS
    if not path.is_file():
        write_json_atomic(path, settings)
        return
    recorded = json.loads(path.read_text())
    changed = [key for key in settings if recorded.get(key) != settings[key]]
    if changed:
        was = ', '.join(f'{key}={recorded.get(key)!r}' for key in changed)
        raise HatError(f'{folder} holds runs with {was}: give the same settings to resume or extend it, or another '
                       'name= for a new comparison')


def run_folder(folder: Path, model: str, seed: int) -> Path:
    return folder / Path(model).stem / f'seed{seed}'


def run_one(folder: Path, model: str, seed: int, settings: dict[str, Any]) -> dict[str, Any]:
    """The record of ``model`` trained with ``seed``: read if the run finished before, else trained (or resumed)
    in a process of its own."""
    record = run_folder(folder, model, seed) / RESULT
    if not record.is_file():
        spec = {'model': model, 'seed': seed, 'folder': str(run_folder(folder, model, seed).resolve()), **settings}
        command = [sys.executable, '-m', 'hat_arch.yolo.compare_run', json.dumps(spec)]
        status = subprocess.run(command, check=False).returncode
        if status != 0 or not record.is_file():
            raise HatError(f'the run of {model} with seed {seed} failed (exit status {status}; its output is above); '
                           'the same command resumes it')
    return json.loads(record.read_text())


def _mean_spread(values: list[float]) -> str:
    if len(values) < 2:
        return f'{values[0]:.3f}' if values else '-'
    return f'{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}'


def metric_keys(records: list[dict[str, Any]]) -> list[str]:
    """The accuracy metrics every record has: mAP50 and mAP50-95 per kind (boxes, masks, keypoints), or top-1/top-5
    accuracy for classification."""
    keys = [k for k in records[0]['metrics'] if k.startswith(('metrics/mAP50', 'metrics/accuracy'))]
    return [k for k in keys if all(k in r['metrics'] for r in records)]


def table(comparison: Comparison, records: dict[str, list[dict[str, Any]]]) -> str:
    """The comparison as a Markdown table, one row per model: accuracy as mean ± sample standard deviation over
    its seeds, cost beside it."""
    everything = [r for rs in records.values() for r in rs]
    keys = metric_keys(everything)
    memory_kind = everything[0]['memory_kind']
    header = ['model', 'seeds', 'parameters', f'GFLOPs ({comparison.imgsz} px)',
              *[k.removeprefix('metrics/') for k in keys], 'epoch time', f'peak memory ({memory_kind})']
    lines = ['| ' + ' | '.join(header) + ' |', '| ' + ' | '.join('---' for _ in header) + ' |']
    for model, runs in records.items():
        epoch_seconds = [s for r in runs for s in r['epoch_seconds']]
        cells = [f'`{model}`', str(len(runs)), f"{runs[0]['parameters'] / 1e6:.2f} M", f"{runs[0]['gflops']:.3g}",
                 *[_mean_spread([r['metrics'][k] for r in runs]) for k in keys],
                 f'{statistics.mean(epoch_seconds):.1f} s' if epoch_seconds else '-',
                 f"{max(r['peak_memory_bytes'] for r in runs) / 2 ** 20:.0f} MiB"]
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)


def conditions(comparison: Comparison, data: str, records: dict[str, list[dict[str, Any]]]) -> str:
    everything = [r for rs in records.values() for r in rs]
    devices = sorted({r['device'] for r in everything})
    extra = ', '.join(f'{k}={v}' for k, v in comparison.settings(data)['train_args'].items())
    return (f'data {data}; {comparison.epochs} epochs at {comparison.imgsz} px, seeds '
            f"{','.join(map(str, comparison.seeds))}; {extra or 'Ultralytics defaults'}; device {', '.join(devices)}; "
            'accuracy: mean ± sample standard deviation over the seeds (best.pt, final validation); epoch time: mean '
            'seconds per training epoch without validation; peak memory: the largest over the seeds')


def compare(comparison: Comparison) -> str:
    """Run (or finish) the comparison and return its table, also written to ``summary.md`` in its folder."""
    check_start(comparison)
    folder = comparison.folder
    with holding(folder):
        data = comparison.data
        if data == SYNTHETIC:
            from hat_arch.yolo.synthetic import write_dataset

            data = str(write_dataset(folder / 'dataset'))
        settings = comparison.settings(str(Path(data).resolve()))
        check_settings(folder, settings)
        records = {model: [run_one(folder, model, seed, settings) for seed in comparison.seeds]
                   for model in comparison.models}
        text = f'{conditions(comparison, data, records)}\n\n{table(comparison, records)}\n'
        write_text_atomic(folder / 'summary.md', text)
    return text


def main(argv: list[str]) -> int:
    """``hat-yolo compare key=value ...``: prints the table when every run has finished."""
    text = compare(parse_arguments(argv))
    print(f'\n{text}', end='')
    return 0

