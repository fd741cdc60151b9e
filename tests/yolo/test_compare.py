"""``hat-yolo compare``: its arguments, its refusals before any run, its table, and one tiny comparison end to end."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
from hat_arch.errors import HatError
from hat_arch.yolo import compare
from hat_arch.yolo.synthetic import CLASSES, write_dataset
from tests.conftest import ROOT
from tests.yolo.conftest import OFFLINE_ENV


def test_arguments_name_seeds_by_count_or_list_and_pass_training_arguments_through():
    c = compare.parse_arguments(['data=my.yaml', 'models=yolo11n.yaml, yolo11n-hat-neck.yaml', 'seeds=3',
                                 'epochs=2', 'imgsz=96', 'batch=8', 'lr0=0.01', 'device=cpu'])
    assert (c.data, c.models, c.seeds, c.epochs, c.imgsz) == ('my.yaml', ['yolo11n.yaml', 'yolo11n-hat-neck.yaml'],
                                                              [0, 1, 2], 2, 96)
    assert c.train_args == {'batch': 8, 'lr0': 0.01, 'device': 'cpu'}
    assert compare.parse_arguments(['seeds=4,9']).seeds == [4, 9]
    assert compare.parse_arguments([]).models == list(compare.DEFAULT_MODELS)


@pytest.mark.parametrize('argv, match', [
    (['seeds=a'], "seeds='a': give a count"),
    (['seeds=1,1'], 'each once'),
    (['epochs=0'], "epochs='0' must be a positive whole number"),
    (['models=a/x.yaml,b/x.yaml'], 'each with its own file name'),
    (['epochs'], "key=value arguments, got 'epochs'"),
])
def test_bad_arguments_are_refused_by_name(argv, match):
    with pytest.raises(HatError, match=match):
        compare.parse_arguments(argv)


@pytest.mark.parametrize('argv, match', [
    (['batchh=8'], r"'batchh' is not an Ultralytics training argument \(did you mean 'batch'\?\)"),
    (['lr0=abc'], "training arguments: 'lr0=abc' is of invalid type str"),
    (['seed=3'], 'compare sets seed itself'),
    (['models=nowhere/mine.yaml'], 'models: nowhere/mine.yaml: '),
    (['models=yolo11n.pt'], "'yolo11n.pt' is not a model YAML"),
    (['data=nowhere.yaml'], "data='nowhere.yaml': no such data YAML"),
])
def test_what_would_fail_a_run_is_refused_before_the_first(argv, match, tmp_path):
    c = compare.parse_arguments([*argv, f'project={tmp_path}'])
    with pytest.raises(HatError, match=match) as error:
        compare.compare(c)
    assert '\n' not in str(error.value)
    assert list(tmp_path.iterdir()) == []  # nothing made before the refusal


def test_a_folder_keeps_the_settings_it_was_started_with(tmp_path):
    settings = {'data': '/d.yaml', 'epochs': 3, 'imgsz': 64, 'train_args': {'plots': False}}
    compare.check_settings(tmp_path, settings)
    compare.check_settings(tmp_path, dict(settings))  # the same: resume or extend
    with pytest.raises(HatError, match=r"holds runs with epochs=3: give the same settings .* or another name="):
        compare.check_settings(tmp_path, {**settings, 'epochs': 5})


def test_a_new_comparison_folder_is_made_before_its_settings_are_written(tmp_path):
    folder = tmp_path / 'runs' / 'first'
    with compare.holding(folder):
        compare.check_settings(folder, {'data': '/d.yaml'})
    assert (folder / compare.SETTINGS).is_file()


def test_a_second_comparison_in_the_same_folder_is_refused(tmp_path):
    with compare.holding(tmp_path), pytest.raises(HatError, match=r'belongs to a run that is still going \(pid \d+ .*'
                                                    r'hat-yolo compare name=.*\); .* or choose another name=$'), \
            compare.holding(tmp_path):
        pass


def record(map50: float, seed: int) -> dict:
    return {'seed': seed, 'metrics': {'metrics/precision(B)': 0.5, 'metrics/mAP50(B)': map50,
                                      'metrics/mAP50-95(B)': map50 / 2, 'fitness': 0.1},
            'parameters': 2_600_000, 'gflops': 1.254, 'epoch_seconds': [2.0, 4.0], 'peak_memory_bytes': 2 ** 30 * seed,
            'memory_kind': 'process RSS', 'device': 'cpu'}


def test_table_gives_mean_and_sample_spread_over_seeds_beside_cost():
    c = compare.Comparison(models=['a.yaml'], seeds=[1, 2, 3], imgsz=64)
    text = compare.table(c, {'a.yaml': [record(0.2, 1), record(0.4, 2), record(0.6, 3)]})
    header, _, row = text.splitlines()
    assert header == ('| model | seeds | parameters | GFLOPs (64 px) | mAP50(B) | mAP50-95(B) | epoch time | '
                      'peak memory (process RSS) |')
    assert row == '| `a.yaml` | 3 | 2.60 M | 1.25 | 0.400 ± 0.200 | 0.200 ± 0.100 | 3.0 s | 3072 MiB |'


def test_synthetic_set_is_drawn_once_with_separate_validation_images(tmp_path):
    data = write_dataset(tmp_path / 'set', train=4, val=2, size=64)
    text = data.read_text()
    assert 'train: images/train' in text and 'val: images/val' in text and all(n in text for n in CLASSES)
    assert len(list((tmp_path / 'set' / 'images' / 'val').glob('*.png'))) == 2
    labels = (tmp_path / 'set' / 'labels' / 'train' / '00000.txt').read_text().split()
    assert labels and int(labels[0]) in range(len(CLASSES)) and all(0 < float(v) <= 1 for v in labels[1:5])
    before = (tmp_path / 'set' / 'images' / 'train' / '00000.png').stat().st_mtime_ns
    assert write_dataset(tmp_path / 'set', train=4, val=2, size=64) == data
    assert (tmp_path / 'set' / 'images' / 'train' / '00000.png').stat().st_mtime_ns == before


ROW = re.compile(r'^\| `(?P<model>[^`]+)` \| 2 \| [\d.]+ M \| [\d.]+ \| (?P<map50>[\d.]+ ± [\d.]+) \| '
                 r'(?P<map>[\d.]+ ± [\d.]+) \| [\d.]+ s \| \d+ MiB \|$', re.MULTILINE)


@pytest.mark.slow
def test_compare_runs_end_to_end_prints_its_table_and_a_second_call_trains_nothing(tmp_path):
    command = [sys.executable, '-m', 'hat_arch.cli.yolo', 'compare', 'data=synthetic',
               'models=yolo11n.yaml,yolo11n-hat-neck.yaml', 'seeds=2', 'epochs=1', 'imgsz=64', 'batch=16',
               'workers=0', 'device=cpu', f'project={tmp_path}', 'name=smoke']
    env = {**os.environ, **OFFLINE_ENV, 'OMP_NUM_THREADS': '1'}
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = ROW.findall(first.stdout)
    assert [r[0] for r in rows] == ['yolo11n.yaml', 'yolo11n-hat-neck.yaml'], first.stdout[-2000:]
    records = sorted((tmp_path / 'smoke').glob('*/seed*/hat_compare.json'))
    assert len(records) == 4
    assert (tmp_path / 'smoke' / 'summary.md').read_text().strip().endswith(first.stdout.strip().splitlines()[-1])
    stamps = [r.stat().st_mtime_ns for r in records]
    second = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    assert second.returncode == 0, second.stderr[-3000:]
    assert ROW.findall(second.stdout) == rows
    assert [r.stat().st_mtime_ns for r in records] == stamps
    assert 'Starting training' not in second.stdout + second.stderr


def test_a_run_is_trained_resumed_or_validated_as_its_last_checkpoint_says(tmp_path):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from hat_arch.yolo.compare_run import next_step

    last = tmp_path / 'last.pt'
    assert next_step(last) == ('train', None)
    model = DetectionModel({'nc': 2, 'backbone': [[-1, 1, 'Conv', [8, 3, 2]], [-1, 1, 'HAT', [16, [1], [2], 4]]],
                            'head': [[[1], 1, 'Detect', ['nc']]]}, verbose=False)
    torch.save({'model': model, 'optimizer': {'state': {}}, 'epoch': 0, 'train_args': {}}, last)
    step, previous = next_step(last)
    assert step == 'resume' and previous.ckpt['epoch'] == 0
    torch.save({'model': model, 'optimizer': None, 'epoch': -1, 'train_args': {}}, last)  # as strip_optimizer leaves it
    assert next_step(last)[0] == 'validate'
