"""A run owns its folder: one live ``basicsr train`` / ``basicsr test`` per experiment or results folder.

BasicSR renames an existing ``experiments/<name>`` (``results/<name>``) to ``<name>_archived_<time>`` when a run of
that name starts: a second run started while the first is alive moved the live run's folder away, the first kept
writing into the second's, and its final model was lost. :func:`hold_run_folder` takes an exclusive ``flock`` on
``.<name>.lock`` beside the folder (beside, so that archiving the folder never moves the lock) before anything reads or
writes it, and keeps it until the run ends. The kernel drops the lock when its process dies, however it dies, so a
lock file left by a killed run blocks nothing. A second run is refused in one line naming the live one (its process
id, host, start time and command, which the lock file holds). Distributed runs hold it on rank 0 and every process
gets rank 0's answer. Without ``fcntl`` (Windows) nothing is locked.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import socket
import time
from typing import Iterator

from basicsr.utils.dist_util import get_dist_info

from hat_arch.errors import HatError
from hat_arch.training.distributed import broadcast_object

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


def lock_path(folder: str) -> str:
    """The lock file of the run folder ``folder``: ``.<name>.lock`` in its parent."""
    parent, name = os.path.split(os.path.normpath(os.path.abspath(folder)))
    return os.path.join(parent, f'.{name}.lock')


def acquire(folder: str, command: list[str]) -> int | None:
    """An open descriptor holding the lock of ``folder``; HatError naming the live run when another process holds it.

    None without ``fcntl``, or where the lock file cannot be made: then the run cannot make its folder either, and the
    start-up check of the folder says why in its own words.
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
                           f'({holder or "another process"}); wait for it to end or stop it, or give this run '
                           'another name') from None
        # A run that ended removed the file after this one opened it: lock the file that is there now.
        with contextlib.suppress(OSError):
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(descriptor).st_ino:
                break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, (f'pid {os.getpid()} on {socket.gethostname()}, started '
                          f'{time.strftime("%Y-%m-%d %H:%M:%S")}: {shlex.join(command)}').encode())
    return descriptor


def release(folder: str, descriptor: int | None) -> None:
    """Remove the lock file of ``folder`` (while still holding it, so no other run locks a removed file) and unlock."""
    if descriptor is None:
        return
    with contextlib.suppress(OSError):
        os.remove(lock_path(folder))
    os.close(descriptor)


@contextlib.contextmanager
def hold_run_folder(folder: str, command: list[str]) -> Iterator[None]:
    """Hold ``folder`` for the run of ``command`` (its words) within the block; HatError if a live run holds it."""
    descriptor, refusal = None, None
    if get_dist_info()[0] == 0:
        try:
            descriptor = acquire(folder, command)
        except HatError as error:
            refusal = str(error)
    refusal = broadcast_object(refusal)
    if refusal:
        raise HatError(refusal)
    try:
        yield
    finally:
        release(folder, descriptor)


def _read(descriptor: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return os.pread(descriptor, 4096, 0).decode().strip()
    return ''
