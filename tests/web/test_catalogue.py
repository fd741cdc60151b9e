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
    assert 'skipping' in capsys.readouterr().err and 'other.pth' not in [c.path.name for c in found]


def test_a_single_file_that_is_not_a_hat_is_an_error_naming_it(tmp_path):
    torch.save({'params': {'conv.weight': torch.zeros(3)}}, tmp_path / 'other.pth')
    with pytest.raises(HatError, match='other.pth'):
        find_checkpoints(tmp_path / 'other.pth')
