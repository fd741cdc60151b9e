"""training/options.py: option checks that need no training run."""
from __future__ import annotations

import pytest

from hat_arch.errors import HatError
from hat_arch.training.options import _check_tile_options


def test_tile_size_auto_is_accepted_and_other_words_are_not():
    _check_tile_options({'tile_size': 'auto', 'tile_pad': 16}, 'test.yml')
    _check_tile_options({'tile_size': None, 'tile_pad': None}, 'test.yml')
    with pytest.raises(HatError, match="option file test.yml: tile: tile_size: tile must be a positive number of pixels, "
                       "0 / None \\(whole image\\) or 'auto', got 'big'"):
        _check_tile_options({'tile_size': 'big'}, 'test.yml')
