"""The error users see as one line: bad option files, paths, images, checkpoints.

Launchers (``basicsr``, ``hat-sr``) print ``<command>: error: <message>`` and exit with status 2 for these instead of
a traceback.
"""
from __future__ import annotations

import difflib
import sys
from typing import Callable, Iterable


class HatError(Exception):
    """A problem with the user's input (a file, key or value), described in one line that names it."""


def user_message(error: HatError) -> str:
    """The one-line message of ``error``, also when a DataLoader worker raised it: torch re-raises it in the main
    process with the worker's traceback in the message, the original message on its last line."""
    message = str(error).strip()
    if '\n' in message and message.startswith('Caught '):
        message = message.splitlines()[-1].split(f'{HatError.__name__}: ', 1)[-1]
    return message


def report_user_errors(run: Callable[[], int], prog: str) -> int:
    """``run()``'s exit status; a :class:`HatError` is printed as ``<prog>: error: <message>`` and gives 2."""
    try:
        return run()
    except HatError as error:
        print(f'{prog}: error: {user_message(error)}', file=sys.stderr)
        return 2


def did_you_mean(word, choices: Iterable) -> str:
    """' (did you mean 'X'?)' for the choice closest to ``word``, compared case-blind (calculate_PSNR ->
    calculate_psnr); '' if none is close."""
    by_lower = {str(choice).lower(): choice for choice in choices}
    close = difflib.get_close_matches(str(word).lower(), sorted(by_lower), n=1)
    return f" (did you mean '{by_lower[close[0]]}'?)" if close else ''


def first_line(error: BaseException) -> str:
    """What went wrong, in one line: an OSError's reason (its message repeats the path the caller names), else the
    first line of the message, else the exception's type (some are raised without a message)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
