"""The progress callback shown as a tqdm bar: totals that change, and a retry that starts over."""
from __future__ import annotations

from hat_arch.progress import progress_bar


def test_the_bar_follows_done_and_total_and_starts_over(capsys):
    with progress_bar('photo.png', 'tile', mininterval=0) as progress:
        for done, total in [(0, 4), (2, 4), (0, 9), (5, 9), (9, 9)]:
            progress(done, total)
    err = capsys.readouterr().err
    positions = [err.index(shown) for shown in ('2/4', '0/9', '5/9', '9/9')]
    assert positions == sorted(positions) and err.count('photo.png') >= 4


def test_a_disabled_bar_shows_nothing(capsys):
    with progress_bar('photo.png', 'tile', enabled=False) as progress:
        progress(0, 4)
        progress(4, 4)
    assert capsys.readouterr().err == ''
