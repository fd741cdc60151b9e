"""``import hat_arch`` is instant; its public names and submodules load on first use, as the README's snippets use
them (``hat_arch.load_model``, ``hat_arch.progress.progress_bar``)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_names_and_submodules_load_on_first_use():
    code = ('import sys, hat_arch\n'
            "assert 'torch' not in sys.modules\n"
            'assert callable(hat_arch.progress.progress_bar)\n'  # first: the API modules below import it
            'assert callable(hat_arch.load_model) and callable(hat_arch.upscale) and callable(hat_arch.lam)\n'
            "assert hat_arch.HAT.__name__ == 'HAT'\n"
            'try:\n    hat_arch.no_such_name\nexcept AttributeError as error:\n    print(error)\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "module 'hat_arch' has no attribute 'no_such_name'"
