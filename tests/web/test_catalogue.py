"""hat-sr serve -m FOLDER offers every HAT checkpoint there, described from its weights; other files are skipped."""
from __future__ import annotations

import pytest
import torch

from hat_arch.errors import HatError
from hat_arch.web.catalogue import ModelCache, find_checkpoints, label
from tests.conftest import load_golden


def test_a_folder_lists_each_checkpoint_with_scale_width_blocks_and_parameters(tmp_path, capsys):
    for name in ('tiny_x2', 'tiny_x4'):
        torch.save({'params_ema': load_golden(name)['params']}, tmp_path / f'{name}.pth')
    torch.save({'params': {'conv.weight': torch.zeros(3)}}, tmp_path / 'other.pth')
    (tmp_path / 'notes.txt').write_text('not a checkpoint')

    found = find_checkpoints(tmp_path)
    assert [c.path.name for c in found] == ['tiny_x2.pth', 'tiny_x4.pth']
    assert label(found[1]) == ('tiny_x4.pth: HAT x4 (pixelshuffle): 3 channels, width 24, 2 x 2 blocks, window 8, '
                               '0.37 M parameters')
    assert found[0].scale == 2
    model = ModelCache('cpu').get(found[1], 'fp32')
    assert sum(p.numel() for p in model.parameters()) == found[1].num_params
    assert 'skipped: ' in capsys.readouterr().err and 'other.pth' not in [c.path.name for c in found]


def test_a_single_file_that_is_not_a_hat_is_an_error_naming_it(tmp_path):
    torch.save({'params': {'conv.weight': torch.zeros(3)}}, tmp_path / 'other.pth')
    with pytest.raises(HatError, match='other.pth'):
        find_checkpoints(tmp_path / 'other.pth')


def malformed_checkpoints(folder) -> dict[str, str]:
    """Checkpoints that break the shape reading in different ways, by file name: the reason each is skipped."""
    params = load_golden('tiny_x4')['params']
    torch.save({'params_ema': params}, folder / 'good.pth')
    torch.save({'params_ema': {**params, 'conv_first.weight': torch.tensor(1.0)}}, folder / 'scalar.pth')
    torch.save({'params_ema': {**params, 'conv_first.weight': torch.zeros(0, 3, 3, 3)}}, folder / 'zero.pth')
    (folder / 'garbage.safetensors').write_bytes(b'\x00' * 64)
    (folder / 'truncated.pth').write_bytes((folder / 'good.pth').read_bytes()[:500])
    return {'scalar.pth', 'zero.pth', 'garbage.safetensors', 'truncated.pth'}


def test_a_folder_with_malformed_checkpoints_lists_each_as_skipped_in_one_line_and_serves_the_rest(tmp_path, capsys):
    skipped = malformed_checkpoints(tmp_path)
    assert [c.path.name for c in find_checkpoints(tmp_path)] == ['good.pth']
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == len(skipped)
    for name in skipped:
        line = next(line for line in lines if f'{tmp_path / name}' in line)
        assert line.startswith('hat-sr serve: skipped: ') and 'Traceback' not in line


def test_a_single_malformed_checkpoint_is_a_one_line_error_naming_it(tmp_path):
    malformed_checkpoints(tmp_path)
    for name in ('scalar.pth', 'zero.pth'):
        with pytest.raises(HatError, match=f'{tmp_path / name}: '):
            find_checkpoints(tmp_path / name)
