"""Where a click on the LAM tab's image puts the output box: centred on the clicked pixel's output, kept inside."""
from __future__ import annotations

import pytest

gr = pytest.importorskip('gradio', reason="hat-sr serve needs the web extra: pip install -e '.[web]'")

from hat_arch.checkpoint import describe  # noqa: E402
from hat_arch.web.app import _place_box  # noqa: E402
from hat_arch.web.catalogue import label  # noqa: E402


def click(checkpoint, column: int, row: int, side: int = 16, size: tuple[int, int] = (70, 50)) -> tuple[int, int]:
    info = describe(checkpoint)  # x4
    place = _place_box({label(info): info})
    return place(label(info), side, size, gr.SelectData(None, {'index': [column, row], 'value': None}))


def test_the_box_is_centred_on_the_clicked_pixels_output_and_kept_inside(checkpoint):
    assert click(checkpoint, 50, 20) == (50 * 4 + 2 - 8, 20 * 4 + 2 - 8)
    assert click(checkpoint, 0, 0) == (0, 0)
    assert click(checkpoint, 69, 49) == (70 * 4 - 16, 50 * 4 - 16)
    assert click(checkpoint, 10, 10, side=32) == (40 + 2 - 16, 40 + 2 - 16)


def test_a_click_before_an_image_is_chosen_says_so(checkpoint):
    with pytest.raises(gr.Error, match='Choose a model and an image first'):
        click(checkpoint, 1, 1, size=None)
