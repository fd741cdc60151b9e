"""The error users see as one line: bad option files, paths, images, checkpoints.

Launchers (``basicsr``, ``hat-sr``) print ``error: <message>`` and exit with status 2 for these instead of a traceback.
"""
import sys
from typing import Callable


class HatError(Exception):
    """A problem with the user's input (a file, key or value), described in one line that names it."""


def report_user_errors(run: Callable[[], int], prog: str) -> int:
    """``run()``'s exit status; a :class:`HatError` is printed as ``<prog>: error: <message>`` and gives 2."""
    try:
        return run()
    except HatError as error:
        print(f'{prog}: error: {error}', file=sys.stderr)
        return 2
