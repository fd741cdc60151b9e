"""The loop over many files: one file's failure is reported by name and the others go on.

Every command that works through many files runs its per-file work through :func:`each_file` and shows the
outcomes its own way (a progress bar, the page's status, a report). A failure is held as one line that names the
file, whatever raised it, so that a pool's worker can hand it back and a summary can list it.
"""
from __future__ import annotations

import re
import time
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import Pool
from typing import Callable, Generic, Iterable, Iterator, Sequence, TypeVar

from hat_arch.errors import HatError, first_line, user_message

Item = TypeVar('Item')
Result = TypeVar('Result')
POOL_CHUNK = 4  # items a worker takes at a time: fewer round trips, and the order of the outcomes is kept


@dataclass(frozen=True)
class FileOutcome(Generic[Item, Result]):
    """What the work on one item gave: its result, or ``error``, one line naming the file; and the seconds it took."""
    item: Item
    result: Result | None
    error: str | None
    seconds: float

    @property
    def failed(self) -> bool:
        return self.error is not None


def error_line(error: BaseException) -> str:
    """An error in one line: a :class:`HatError`'s message, else the first line of a library's (see
    :func:`~hat_arch.errors.first_line`)."""
    return user_message(error).splitlines()[0] if isinstance(error, HatError) else first_line(error)


def naming(file: str, message: str) -> str:
    """``message`` with ``file`` in front, unless it names it already (hat_arch's own messages do): as a whole word,
    not as the end of another path ('out/x.png' does not name 'x.png')."""
    named = re.search(rf'(?:^|[\s\'"(]){re.escape(file)}(?=$|[\s\'"):,;])', message)
    return message if named else f'{file}: {message}'


@dataclass(frozen=True)
class _OneFile(Generic[Item, Result]):
    """The work on one item, failures caught: a module-level class, so that a process pool can pickle it."""
    work: Callable[[Item], Result]
    name: Callable[[Item], str]
    explain: Callable[[BaseException], str]
    stop_on: tuple[type[BaseException], ...]

    def __call__(self, item: Item) -> FileOutcome[Item, Result]:
        start = time.perf_counter()
        try:
            result = self.work(item)
        except self.stop_on:
            raise
        except Exception as error:  # noqa: BLE001  one file's failure, whatever raised it: name the file, go on
            return FileOutcome(item, None, naming(self.name(item), self.explain(error)), time.perf_counter() - start)
        return FileOutcome(item, result, None, time.perf_counter() - start)


def each_file(items: Iterable[Item], work: Callable[[Item], Result], name: Callable[[Item], str] = str, *,
              explain: Callable[[BaseException], str] = error_line, stop_on: tuple[type[BaseException], ...] = (),
              workers: int = 1) -> Iterator[FileOutcome[Item, Result]]:
    """``work(item)`` for each item, in order, yielding a :class:`FileOutcome` as each one ends.

    An exception from ``work`` becomes the outcome's error, ``explain(error)`` led by ``name(item)`` unless it names
    the file already (:func:`naming`), and the next item follows; exceptions of the types in ``stop_on`` (and
    KeyboardInterrupt) end the loop instead. With ``workers`` > 1 the items run in a pool of that many processes:
    ``work``, ``name``, ``explain`` and the ``stop_on`` types must then pickle, and each worker runs torch on one
    thread.
    """
    one_file = _OneFile(work, name, explain, stop_on)
    items = items if isinstance(items, Sequence) else list(items)
    pooled = workers > 1 and len(items) > 1
    with Pool(min(workers, len(items)), initializer=_single_threaded) if pooled else nullcontext() as pool:
        yield from pool.imap(one_file, items, chunksize=POOL_CHUNK) if pool else map(one_file, items)


def _single_threaded() -> None:
    # A forked worker that runs torch ops with the parent's OpenMP pool can deadlock; one thread each avoids it (as
    # torch's DataLoader workers do), and the pool provides the parallelism.
    import torch

    torch.set_num_threads(1)
