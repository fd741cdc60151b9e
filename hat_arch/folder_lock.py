"""A run owns its folder: an exclusive ``flock`` on ``.<name>.lock`` beside the folder, held while the run lives.

Beside the folder, so that moving the folder (BasicSR archives an experiment folder of the same name) never moves the
lock. The kernel drops the lock when its process dies, however it dies, so a lock file left by a killed run blocks
nothing. A second run is refused in one line naming the live one (its process id, host, start time and command, which
the lock file holds). Without ``fcntl`` (Windows) nothing is locked.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from typing import Iterator

from hat_arch.errors import HatError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def lock_path(folder: str | os.PathLike) -> str:
    """The lock file of ``folder``: ``.<name>.lock`` in its parent."""
    parent, name = os.path.split(os.path.normpath(os.path.abspath(folder)))
    return os.path.join(parent, f'.{name}.lock')


def acquire(folder: str | os.PathLike, command: list[str], remedy: str) -> int | None:
    """An open descriptor holding the lock of ``folder``; HatError naming the live run and ``remedy`` when another
    process holds it.

    None without ``fcntl``, or where the lock file cannot be made: then the run cannot make its folder either, and its
    own check of the folder says why in its own words.
    """
    if fcntl is None:
        return None
    path = lock_path(folder)
    while True:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(descriptor)
            os.close(descriptor)
            raise HatError(f'{os.path.relpath(folder)} belongs to a run that is still going '
                           f'({holder or "another process"}); {remedy}') from None
        # A run that ended removed the file after this one opened it: lock the file that is there now.
        with contextlib.suppress(OSError):
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(descriptor).st_ino:
                break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, (f'pid {os.getpid()} on {socket.gethostname()}, started '
                          f'{time.strftime("%Y-%m-%d %H:%M:%S")}: {shlex.join(command)}').encode())
    return descriptor


def release(folder: str | os.PathLike, descriptor: int | None) -> None:
    """Remove the lock file of ``folder`` (while still holding it, so no other run locks a removed file) and unlock."""
    if descriptor is None:
        return
    with contextlib.suppress(OSError):
        os.remove(lock_path(folder))
    os.close(descriptor)


@contextlib.contextmanager
def holding_folder(folder: str | os.PathLike, command: list[str], remedy: str) -> Iterator[None]:
    """Hold ``folder`` for the run of ``command`` (its words) within the block; see :func:`acquire`."""
    descriptor = acquire(folder, command, remedy)
    try:
        yield
    finally:
        release(folder, descriptor)


def _read(descriptor: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return os.pread(descriptor, 4096, 0).decode().strip()
    return ''
