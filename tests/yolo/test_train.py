"""A HAT-YOLO trains like any YOLO model: every HAT parameter learns, best.pt is a normal Ultralytics checkpoint
that a new process reloads (with Ultralytics' weights_only loading) and that exports to ONNX."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
from hat_arch.yolo import HATBlock, model_yaml  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.yolo.conftest import OFFLINE_ARGS  # noqa: E402

pytestmark = pytest.mark.slow
LAYOUTS = ['yolov8n-hat-neck', 'yolov8n-hat-layer0']
IMGSZ = 64
# A new process that loads each best.pt as Ultralytics does with ULTRALYTICS_SAFE_LOAD=1: torch.load(weights_only=
# True) with an allow-list, so anything pickled beyond what `import hat_arch.yolo` registers fails to load.
RELOAD = '''
import json, sys
import hat_arch.yolo
from tests.yolo.test_train import predict_and_validate
data, *checkpoints = sys.argv[1:]
print(json.dumps([predict_and_validate(best, data) for best in checkpoints]))
'''


@dataclass
class Trained:
    best: Path
    before: dict[str, torch.Tensor] = field(default_factory=dict)
    after: dict[str, torch.Tensor] = field(default_factory=dict)
    largest_grad: dict[str, float] = field(default_factory=dict)


def hat_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    blocks = [m for m in model.modules() if isinstance(m, HATBlock)]
    return {f'{i}.{name}': p for i, block in enumerate(blocks) for name, p in block.named_parameters()}


def predict_and_validate(best: str, data: str) -> dict:
    """Boxes predicted for the data set's images (conf 0.001, so that an hour-old model has some) and its
    validation metrics."""
    from ultralytics import YOLO

    model = YOLO(best)
    images = str(Path(data).parent / 'images' / 'train')
    boxes = [r.boxes.data.tolist() for r in model.predict(images, imgsz=IMGSZ, conf=0.001, device='cpu',
                                                           verbose=False)]
    metrics = model.val(data=data, imgsz=IMGSZ, batch=4, verbose=False, **OFFLINE_ARGS).results_dict
    return {'boxes': boxes, 'metrics': metrics}


def train(layout: str, data: Path, project: Path) -> Trained:
    """One short epoch (two AdamW steps at 64 px) on the tiny data set, watching the HAT parameters."""
    from ultralytics import YOLO

    model = YOLO(model_yaml(layout))
    result = Trained(best=project / 'train' / 'weights' / 'best.pt')

    def watch(trainer):  # the trainer builds its own model from the YAML: watch that one
        for name, p in hat_parameters(trainer.model).items():
            result.before[name] = p.detach().clone()
            p.register_post_accumulate_grad_hook(lambda p, name=name: result.largest_grad.__setitem__(
                name, max(result.largest_grad.get(name, 0.0), p.grad.abs().max().item())))

    model.add_callback('on_train_start', watch)
    model.add_callback('on_train_end', lambda trainer: result.after.update(
        {name: p.detach().clone() for name, p in hat_parameters(trainer.model).items()}))
    model.train(data=str(data), epochs=1, imgsz=IMGSZ, batch=4, nbs=4, optimizer='AdamW', lr0=1e-3,
                project=str(project), name='train', verbose=False, **OFFLINE_ARGS)
    return result


@pytest.fixture(scope='module')
def trained_models(boxes_data, tmp_path_factory) -> dict[str, Trained]:
    return {layout: train(layout, boxes_data, tmp_path_factory.mktemp(layout)) for layout in LAYOUTS}


@pytest.mark.parametrize('layout', LAYOUTS)
def test_every_hat_parameter_gets_a_gradient_and_changes(trained_models, layout):
    trained = trained_models[layout]
    assert len(trained.before) > 40
    assert [name for name in trained.before if not trained.largest_grad.get(name)] == []
    assert [name for name, p in trained.before.items() if torch.equal(p, trained.after[name])] == []


def test_best_pt_reloads_in_a_new_process_and_predicts_and_validates_the_same(trained_models, boxes_data):
    here = [predict_and_validate(str(trained.best), str(boxes_data)) for trained in trained_models.values()]
    assert all(all(result['boxes']) for result in here), 'every image should get candidate boxes at conf 0.001'
    env = {**os.environ, 'ULTRALYTICS_SAFE_LOAD': '1', 'OMP_NUM_THREADS': '1'}
    run = subprocess.run([sys.executable, '-c', RELOAD, str(boxes_data), *[str(t.best) for t in
                                                                             trained_models.values()]],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    there = json.loads(run.stdout.strip().splitlines()[-1])
    for a, b in zip(here, there):
        assert a['metrics'] == pytest.approx(b['metrics'], abs=1e-6)
        assert [len(boxes) for boxes in a['boxes']] == [len(boxes) for boxes in b['boxes']]
        for boxes_a, boxes_b in zip(a['boxes'], b['boxes']):
            np.testing.assert_allclose(np.array(boxes_a), np.array(boxes_b), rtol=1e-4, atol=1e-4)


def test_cli_validates_a_trained_model_in_a_new_process(trained_models, boxes_data, tmp_path):
    """``hat-yolo`` registers HAT before handing over to Ultralytics: without it, the weights_only load refuses
    HAT's classes."""
    best = trained_models[LAYOUTS[0]].best
    env = {**os.environ, 'ULTRALYTICS_SAFE_LOAD': '1', 'OMP_NUM_THREADS': '1', 'YOLO_VERBOSE': 'True'}
    command = [sys.executable, '-m', 'hat_arch.cli.yolo', 'val', f'model={best}', f'data={boxes_data}',
               f'imgsz={IMGSZ}', 'batch=4', f'project={tmp_path}', 'name=val',
               *[f'{key}={value}' for key, value in OFFLINE_ARGS.items()]]
    run = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'YOLOv8n-hat-neck summary (fused)' in run.stdout + run.stderr


@pytest.mark.parametrize('layout', LAYOUTS)
def test_onnx_export_is_reproduced_by_onnxruntime(trained_models, layout):
    ort = pytest.importorskip('onnxruntime')
    from ultralytics import YOLO

    trained = trained_models[layout]
    model = YOLO(trained.best)
    onnx_file = model.export(format='onnx', imgsz=IMGSZ, simplify=False, device='cpu', verbose=False)
    image = torch.rand(1, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        expected = YOLO(trained.best).model.eval()(image)[0].numpy()
    session = ort.InferenceSession(onnx_file, providers=['CPUExecutionProvider'])
    (got, ) = session.run(None, {session.get_inputs()[0].name: image.numpy()})
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)
