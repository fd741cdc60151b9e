"""The problems of one input, reported together: an option file names every missing path and bad key in one run.

Checks add what they find to a :class:`Problems` instead of stopping at the first, so that a recipe with three missing
data sets and a missing checkpoint fails once, listing all four, not in four edit-and-rerun rounds. A check that can
only stop at its first problem (it cannot go on without what is missing) runs in :meth:`Problems.collect`.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from hat_arch.errors import HatError


class Problems:
    """The one-line messages of the problems found so far, in the order found."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __len__(self) -> int:
        return len(self.messages)

    def add(self, message: str) -> None:
        if message not in self.messages:  # one key checked by two checks is one problem
            self.messages.append(message)

    @contextlib.contextmanager
    def collect(self) -> Iterator[None]:
        """Run a check that raises HatError at its first problem: the problem is added, and the checks after go on."""
        try:
            yield
        except HatError as error:
            self.add(str(error))

    def raise_if_any(self, subject: str) -> None:
        """HatError with the problems of ``subject`` (e.g. ``option file x.yml``): one alone as its own line, several as
        ``<subject> has N problems:`` and one line each, without the subject they repeat."""
        if len(self.messages) == 1:
            raise HatError(self.messages[0])
        if self.messages:
            lines = [message.removeprefix(f'{subject}: ') for message in self.messages]
            raise HatError(f'{subject} has {len(lines)} problems:\n' + '\n'.join(f'  {line}' for line in lines))
