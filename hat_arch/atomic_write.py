"""The one way hat_arch writes a file: complete or not at all, never through a symbolic link, never over another file.

:func:`write_atomic` creates a temporary file in the target's folder with ``O_CREAT | O_EXCL | O_NOFOLLOW`` under an
unpredictable name (so nothing planted there, a link included, is opened or written through), writes the data,
fsyncs it where the data matter, and renames it over the target: ``rename`` replaces a link at the target itself,
never the file it points to. At any instant the target is the previous complete file or the new one.

Temporary names are ``.<target name, shortened to fit>.<8 random hex digits>.hat-partial``: never longer than the
file system allows, whatever the target's length. The files a killed run left (a kill cannot run clean-up code) are
removed by the next writer in that folder once they are older than the writer (:func:`remove_leftovers`): a live
write's file is newer, because every write happens while its data flow.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import stat
import threading
import time
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

from hat_arch.errors import HatError, first_line

TEMPORARY_SUFFIX = '.hat-partial'
_RANDOM_DIGITS = 8
# How this module and the folder probe of :func:`hat_arch.output_checks.cannot_write` (``tempfile``'s letters)
# name files.
LEFTOVER = re.compile(r'^\..*\.[0-9a-z_]{%d}%s$' % (_RANDOM_DIGITS, re.escape(TEMPORARY_SUFFIX)), re.DOTALL)
_OPEN_FLAGS = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, 'O_NOFOLLOW', 0) | getattr(os, 'O_CLOEXEC', 0)
               | getattr(os, 'O_BINARY', 0))
_WRITER_START = time.time()  # leftovers older than this belong to no live write of this process or a later one
_cleaned_folders: set[str] = set()


class AtomicWriteError(HatError):
    """A file could not be written (``cannot write <path>: <reason>``); whatever was at the path is unchanged."""


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object], durable: bool = True) -> None:
    """Call ``write(file)`` on a new private temporary file beside ``path``, then rename it over ``path``.

    ``durable``: fsync the file and its folder, so that a power loss leaves the old or the new file (checkpoints,
    results); off for files whose loss costs nothing. The file gets the mode the umask gives a new file. Any failure
    removes the temporary file and raises :class:`AtomicWriteError` (the cause chained).
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    remove_leftovers(folder)
    temporary = None
    try:
        with _interrupts_held():
            descriptor, temporary = _create_temporary(folder, name)
            with os.fdopen(descriptor, 'wb') as file:
                write(file)
                file.flush()
                if durable:
                    os.fsync(file.fileno())
            os.replace(temporary, os.path.join(folder, name))
    except Exception as error:  # OSError, or what ``write`` raises for a failed write (torch: RuntimeError)
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
        raise AtomicWriteError(f'cannot write {path}: {first_line(error)}') from error
    if durable:
        _fsync_folder(folder)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the write is done, then reach the handlers they would have reached: raised
    inside a writer such as ``torch.save``'s, an interrupt becomes a damaged-file error, and a stopped training would
    report a failed checkpoint instead of stopping with it kept. (Handlers can only be set in the main thread.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    held = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if callable(handler):  # a Python handler (the default one raises KeyboardInterrupt): hold it
            held[number] = handler
            signal.signal(number, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for number, handler in held.items():
            signal.signal(number, handler)
        for number in pending:
            signal.raise_signal(number)


def write_bytes_atomic(path: str | Path, data: bytes | memoryview, durable: bool = True) -> None:
    """:func:`write_atomic` of ``data``."""
    write_atomic(path, lambda file: file.write(data), durable)


def write_text_atomic(path: str | Path, text: str, durable: bool = True) -> None:
    """:func:`write_atomic` of ``text`` in UTF-8."""
    write_bytes_atomic(path, text.encode('utf-8'), durable)


def write_json_atomic(path: str | Path, value: object, durable: bool = True) -> None:
    """:func:`write_text_atomic` of ``value`` as indented JSON."""
    write_text_atomic(path, json.dumps(value, indent=1) + '\n', durable)


def _create_temporary(folder: str, name: str) -> tuple[int, str]:
    """A new file in ``folder`` opened exclusively, without following links; (descriptor, path)."""
    for _ in range(100):
        path = os.path.join(folder, temporary_name(name, _name_max(folder)))
        try:
            return os.open(path, _OPEN_FLAGS, 0o666), path
        except FileExistsError:  # a file or link of that name: never open it, draw another name
            continue
    raise FileExistsError(f'no free temporary name in {folder}')


def temporary_name(name: str, name_max: int = 255) -> str:
    """``.<name>.<random>.hat-partial``, the name shortened (in bytes, as file systems count) to fit ``name_max``."""
    tail = f'.{secrets.token_hex(_RANDOM_DIGITS // 2)}{TEMPORARY_SUFFIX}'
    room = max(name_max - 1 - len(tail), 0)
    return '.' + os.fsencode(name)[:room].decode('utf-8', 'ignore') + tail


def _name_max(folder: str) -> int:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return os.pathconf(folder, 'PC_NAME_MAX')
    return 255


def remove_leftovers(folder: str | Path, older_than: float | None = None) -> list[str]:
    """Delete the temporary files of writes killed mid-way in ``folder``: regular files named as :func:`write_atomic`
    names them, last modified before ``older_than`` (default: when this process's writer started; a folder is
    then looked at once). Returns their names. Anything else (other files, links) is left alone."""
    folder = os.fspath(folder)
    if older_than is None:
        if folder in _cleaned_folders:
            return []
        _cleaned_folders.add(folder)
        older_than = _WRITER_START
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if LEFTOVER.match(entry.name) and _stale_file(entry, older_than):
                with contextlib.suppress(OSError):
                    os.remove(entry.path)
                    removed.append(entry.name)
    return removed


def _stale_file(entry: os.DirEntry, older_than: float) -> bool:
    with contextlib.suppress(OSError):
        info = entry.stat(follow_symlinks=False)
        return stat.S_ISREG(info.st_mode) and info.st_mtime < older_than
    return False


def _fsync_folder(folder: str) -> None:
    with contextlib.suppress(OSError):  # not every platform / file system can open or sync a folder
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
