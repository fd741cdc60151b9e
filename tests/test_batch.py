"""The per-file loop: one file's failure is one line naming it, and the other files are done, in order."""
from __future__ import annotations

import os

import pytest

from hat_arch.batch import each_file, naming
from hat_arch.errors import HatError


class Stop(Exception):
    pass


def square_or_fail(item: str) -> tuple[int, int]:
    """Module-level, so that a process pool can run it."""
    if item.startswith('bad'):
        raise ValueError('broken\nsecond line')
    if item.startswith('named'):
        raise HatError(f'{item} is too small')
    return int(item) ** 2, os.getpid()


@pytest.mark.parametrize('workers', [1, 2])
def test_failures_are_named_once_and_the_other_files_are_done_in_order(workers):
    items = ['1', 'bad.png', '3', 'named.png', '5', '6']
    outcomes = list(each_file(items, square_or_fail, workers=workers))
    assert [outcome.item for outcome in outcomes] == items
    assert [outcome.result[0] for outcome in outcomes if not outcome.failed] == [1, 9, 25, 36]
    assert [outcome.error for outcome in outcomes if outcome.failed] == [
        'bad.png: broken',  # a library's words, first line, led by the file
        'named.png is too small']  # hat_arch's own message names the file already
    assert all(outcome.seconds >= 0 for outcome in outcomes)
    pids = {outcome.result[1] for outcome in outcomes if not outcome.failed}
    assert (pids == {os.getpid()}) == (workers == 1)


@pytest.mark.parametrize('message, line', [
    ('cannot read x.png: damaged', 'cannot read x.png: damaged'),
    ('x.png is too small', 'x.png is too small'),
    ("'x.png' is empty", "'x.png' is empty"),
    ('cannot write out/x.png: disk full', 'x.png: cannot write out/x.png: disk full'),  # another file
    ('cannot read x.png.bak', 'x.png: cannot read x.png.bak'),
])
def test_a_file_counts_as_named_only_as_a_whole_path(message, line):
    assert naming('x.png', message) == line


def test_names_and_explanations_are_the_callers():
    outcomes = list(each_file([('a', '/srv/x/a.png')], lambda pair: 1 / 0, name=lambda pair: pair[0],
                              explain=lambda error: type(error).__name__))
    assert outcomes[0].error == 'a: ZeroDivisionError' and outcomes[0].result is None


def test_a_stop_ends_the_loop_instead_of_being_recorded():
    done = []

    def work(item: int) -> int:
        if item == 2:
            raise Stop
        done.append(item)
        return item

    with pytest.raises(Stop):
        list(each_file([1, 2, 3], work, stop_on=(Stop,)))
    assert done == [1]
    assert [outcome.failed for outcome in each_file([1, 2, 3], work)] == [False, True, False]


def test_outcomes_come_as_each_file_ends():
    seen = []
    for outcome in each_file(iter([1, 2]), lambda item: seen.append(item) or item):
        assert seen == list(range(1, outcome.item + 1))  # the next file has not started
