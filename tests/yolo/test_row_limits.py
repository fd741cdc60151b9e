"""A YOLO HAT row that asks for a huge or empty block is refused in one line naming the file, layer and setting,
before anything is allocated."""
from __future__ import annotations

import pytest
import yaml

pytest.importorskip('ultralytics', reason="needs the yolo extra: pip install 'hat_arch[yolo]'")
from hat_arch.errors import HatError  # noqa: E402
from hat_arch.yolo.block import HATBlock  # noqa: E402
from tests.memory import GIB, run_measured  # noqa: E402
from tests.yolo.test_block import detection_model, tiny_yaml  # noqa: E402


@pytest.mark.parametrize('hat_args, message', [
    ([20000], 'embed_dim 20000 is more than the 2048 hat_arch allows'),
    ([64, [1000], [4]], 'depths [1000] asks for 1000 blocks in a group, more than the 64 hat_arch allows'),
    ([64, [2] * 100, [4] * 100],
     'depths [2, 2, 2, 2, ... (100 values)] asks for 100 groups, more than the 64 hat_arch allows'),
    ([64, [2], [4], 512], 'window_size 512 is more than the 64 hat_arch allows'),
    ([512, [2], [512]], 'num_heads [512] is more than the 256 hat_arch allows'),
    ([{'mlp_ratio': 1e6}], 'mlp_ratio 1000000.0 is more than the 16 hat_arch allows'),
])  # (zero and negative sizes are named with the block's defaults: tests/yolo/test_block.py)
def test_oversized_and_empty_rows_are_one_line_naming_file_layer_and_setting(tmp_path, hat_args, message):
    path = tmp_path / 'evil.yaml'
    path.write_text(yaml.safe_dump(tiny_yaml(hat_args)))
    with pytest.raises(HatError) as refused:
        detection_model(str(path))
    assert str(refused.value) == f'{path} layer 1: HAT on 16 channels: {message}'


@pytest.mark.parametrize('repeats', [0, 100_000, 'many'])
def test_a_row_repeated_beyond_reason_is_refused(tmp_path, repeats):
    d = tiny_yaml([])
    d['backbone'][1][1] = repeats
    path = tmp_path / 'evil.yaml'
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(HatError) as refused:
        detection_model(str(path))
    assert str(refused.value) == f'{path} layer 1: HAT repeated {repeats!r} times; hat_arch builds 1 to 16 blocks in ' \
        'a row'


def test_a_python_caller_gets_the_same_limits():  # another entry point than the YAML
    with pytest.raises(HatError, match=r'^HAT on 8 channels: embed_dim 20000 is more than the 2048 hat_arch allows$'):
        HATBlock(8, 20000)


@pytest.mark.slow
@pytest.mark.parametrize('hat_args', [[20000], [64, [1000], [4]]])
def test_oversized_rows_cost_little_to_refuse(tmp_path, hat_args):
    path = tmp_path / 'evil.yaml'
    path.write_text(yaml.safe_dump(tiny_yaml(hat_args)))
    child = ('import sys, hat_arch.yolo\n'
             'from ultralytics.nn.tasks import DetectionModel\n'
             'from hat_arch.errors import HatError\n'
             'try:\n    DetectionModel(sys.argv[1], verbose=False)\n'
             'except HatError as error:\n    sys.exit(f"refused: {error}")\n')
    run = run_measured(['-c', child, path], timeout=120)
    print(f'{hat_args}: peak {run.peak_rss / GIB:.2f} GiB, {run.seconds:.1f} s')
    assert run.returncode == 1 and run.stderr.startswith(f'refused: {path} layer 1: HAT on 16 channels: '), run.stderr
    assert run.peak_rss < 1.5 * GIB  # today's main passed 10 GB
