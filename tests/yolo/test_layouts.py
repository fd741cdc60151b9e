"""Every shipped layout: Ultralytics' own model plus HAT rows, built at every scale, its HAT blocks learning."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
from hat_arch.yolo import HATBlock, shipped_names
from hat_arch.yolo.shipped import CFG_DIR, SCALES

ARTICLE = 'yolov8-hat-layer0.yaml'
LAYOUTS = [name for name in shipped_names() if name != ARTICLE]
FAMILIES = {'yolov8': 'v8', 'yolo11': '11', 'yolo26': '26'}
TASKS = ('', '-seg', '-pose', '-obb', '-cls')


def plain_yaml(layout: str) -> Path:
    """Ultralytics' own model YAML that ``layout`` adds HAT to: 'yolo11-seg-hat-neck.yaml' -> 11/yolo11-seg.yaml."""
    import ultralytics

    family, _, rest = layout.partition('-')
    task = '-' + rest.split('-')[0] if not rest.startswith('hat-') else ''
    return Path(ultralytics.__file__).parent / 'cfg' / 'models' / FAMILIES[family] / f'{family}{task}.yaml'


def absolute_rows(d: dict) -> tuple[int, list]:
    """``d``'s rows without HAT rows, every ``from`` an absolute index in that numbering (a reference to a HAT row,
    which returns its input's shape, becomes one to the layer it reads), and how many of them are the backbone."""
    rows = d['backbone'] + d['head']
    new_index, kept = {}, []
    for i, (source, *rest) in enumerate(rows):
        absolute = [new_index.get(j if j >= 0 else i + j, -1)  # -1 of layer 0: the image
                    for j in (source if isinstance(source, list) else [source])]
        if rest[1] == 'HAT':
            new_index[i] = absolute[0]
            continue
        new_index[i] = len(kept)
        kept.append([absolute if isinstance(source, list) else absolute[0], *rest])
    return sum(row[2] != 'HAT' for row in d['backbone']), kept


def test_every_family_and_task_ships_a_layout():
    assert sorted(LAYOUTS) == sorted(f'{family}{task}-hat-{"p5" if task == "-cls" else "neck"}.yaml'
                                     for family in FAMILIES for task in TASKS)


@pytest.mark.parametrize('layout', LAYOUTS)
def test_layout_is_ultralytics_model_plus_commented_hat_rows(layout):
    ours = yaml.safe_load((CFG_DIR / layout).read_text())
    theirs = yaml.safe_load(plain_yaml(layout).read_text())
    assert {k: v for k, v in ours.items() if k not in ('backbone', 'head')} == \
        {k: v for k, v in theirs.items() if k not in ('backbone', 'head')}
    assert absolute_rows(ours) == absolute_rows(theirs)
    hat_lines = [line for line in (CFG_DIR / layout).read_text().splitlines() if ', HAT, ' in line]
    assert len(hat_lines) == (1 if '-cls-' in layout else 3)
    assert all(line.split('#', 1)[1].strip().split(': ', 1)[1].startswith('on P') for line in hat_lines)


def build(name: str):
    from ultralytics import YOLO

    return YOLO(name).model


def hat_blocks(model) -> list[HATBlock]:
    return [m for m in model.modules() if isinstance(m, HATBlock)]


def tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    return [t for item in (output if isinstance(output, (list, tuple)) else []) for t in tensors(item)]


# The quick loop trains through every task of the newest family; the other families' rows run in CI.
@pytest.mark.parametrize('layout', [name if name.startswith('yolo26') else pytest.param(name, marks=pytest.mark.slow)
                                    for name in LAYOUTS])
def test_scale_n_hat_rows_are_not_identities_and_receive_gradients(layout):
    model = build(layout.replace('-', 'n-', 1))
    blocks = hat_blocks(model)
    seen = {}
    for block in blocks:
        block.register_forward_hook(lambda m, args, out: seen.__setitem__(m, (out - args[0]).abs().max().item()))
    model.train()
    output = model(torch.rand(2, 3, 64, 64))
    assert min(seen.values()) > 1e-4, 'a HAT block returned its input unchanged'
    sum(t.float().square().mean() for t in tensors(output) if t.requires_grad).backward()
    unreached = [f'{i}.{name}' for i, block in enumerate(blocks) for name, p in block.named_parameters()
                 if p.grad is None]
    assert unreached == []
    # Nonzero where every input contributes (a channel-attention squeeze behind a ReLU may be dead for one batch at
    # initialisation; training, in test_train, shows every parameter changing).
    silent = [f'{i}.{name}' for i, block in enumerate(blocks) for name, p in block.named_parameters()
              if name.endswith(('conv_first.weight', 'conv_last.weight', 'qkv.weight', 'proj.weight'))
              and not p.grad.abs().max() > 0]
    assert silent == []


@pytest.mark.parametrize('scale', [pytest.param(s, marks=pytest.mark.slow) if s != 'n' else s for s in SCALES])
@pytest.mark.parametrize('layout', LAYOUTS)
def test_layout_builds_at_every_scale_with_hat_on_the_channels_it_names(layout, scale):
    name = layout.replace('-', f'{scale}-', 1)
    model = build(name)
    assert model.yaml['scale'] == scale
    d = model.yaml
    rows = d['backbone'] + d['head']
    hat = [i for i, row in enumerate(rows) if row[2] == 'HAT']
    assert [m.i for m in model.model if isinstance(m, HATBlock)] == hat
    layers, seen = list(model.model), {}
    for i in hat:  # the channels of what each HAT's source layer really returns
        source = rows[i][0] if rows[i][0] >= 0 else i - 1
        layers[source].register_forward_hook(lambda m, args, out, i=i: seen.__setitem__(i, out.shape[1]))
    with torch.no_grad():
        model.eval()(torch.rand(1, 3, 64, 64))
    assert {i: layers[i].in_channels for i in hat} == seen
