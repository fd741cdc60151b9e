"""A training or test run owns its experiment (results) folder: one live ``basicsr train`` / ``basicsr test`` per
folder.

BasicSR renames an existing ``experiments/<name>`` (``results/<name>``) to ``<name>_archived_<time>`` when a run of
that name starts: a second run started while the first is alive moved the live run's folder away, the first kept
writing into the second's, and its final model was lost. :func:`hold_run_folder` holds the folder's lock
(:mod:`hat_arch.folder_lock`) before anything is written in it, until the run ends. (The resume state is read before,
so that its problems are reported with the option file's; states are written atomically, so a live run's reads
whole.) Distributed runs hold it on rank 0 and every process gets rank 0's answer.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

from basicsr.utils.dist_util import get_dist_info

from hat_arch.errors import HatError
from hat_arch.folder_lock import acquire, release
from hat_arch.training.distributed import broadcast_object

REMEDY = 'wait for it to end or stop it, or give this run another name'


@contextlib.contextmanager
def hold_run_folder(folder: str, command: list[str]) -> Iterator[None]:
    """Hold ``folder`` for the run of ``command`` (its words) within the block; HatError if a live run holds it."""
    descriptor, refusal = None, None
    if get_dist_info()[0] == 0:
        try:
            descriptor = acquire(folder, command, REMEDY)
        except HatError as error:
            refusal = str(error)
    refusal = broadcast_object(refusal)
    if refusal:
        raise HatError(refusal)
    try:
        yield
    finally:
        release(folder, descriptor)
