"""What the page tells its clients when something fails: one line that names the file or value, and never a path of
the server (its workspace, its checkpoints, its libraries), whatever raised it (a full disk included). The server's
log keeps the whole message for whoever runs it."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TypeVar

import gradio as gr

from hat_arch.errors import HatError, first_line, user_message

Handler = TypeVar('Handler', bound=Callable)

# The folders of an absolute path, POSIX ('/tmp/hat-sr-serve-x/jobs/ab12/': not after a word, a dot or a colon, so
# 'x4/2' and URLs stay) or Windows ('C:\\Users\\me\\'); the file name after them is kept, as the user knows it.
SERVER_FOLDERS = re.compile(r'(?<![\w.:/])/(?:[^\s/\'"`:,;()]+/)+|\b[A-Za-z]:\\(?:[^\s\\\'"`]+\\)+')


def without_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its last component."""
    return SERVER_FOLDERS.sub('', text)


def public_message(error: BaseException) -> str:
    """``error`` as the page shows it: one line, no server path. Errors that are not the user's (a write that
    failed, a bug) say so rather than repeat a library's words."""
    if isinstance(error, gr.Error):
        return without_paths(error.message)
    if isinstance(error, HatError):
        return without_paths(user_message(error).splitlines()[0])
    if isinstance(error, OSError):  # the disk or the file system of the server: full, read-only, gone
        return f'the server could not store the files ({first_line(error)}); try again later'
    return without_paths(f'{type(error).__name__}: {first_line(error)}')


def page_errors(log: Callable[[str], None]) -> Callable[[Handler], Handler]:
    """A decorator for request handlers: any exception reaches the client as a :class:`gradio.Error` with
    :func:`public_message`, and the server's ``log`` as it was raised."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def handle(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception as error:
                if not isinstance(error, gr.Error):  # the page's own messages are the user's business
                    log(f'{handler.__name__} failed: {type(error).__name__}: {error}')
                raise gr.Error(public_message(error), print_exception=False) from None

        return handle  # type: ignore[return-value]

    return decorate
