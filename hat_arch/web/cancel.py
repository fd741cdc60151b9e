"""A run whose client went away (the tab closed, the connection dropped, an API client cancelled) stops at its next
tile or LAM step, so that the requests waiting for the model do not wait for it, nor run beside it.

Gradio's queue marks a request's event as no longer alive when its client disconnects, and drops it from its active
jobs when the client cancels it (``/cancel``, which frees the concurrency slot at once); but a handler running in a
worker thread cannot be interrupted from outside. The library's progress callback, called after each unit of work,
asks the queue and raises :class:`ClientGone`.
"""
from __future__ import annotations

from collections.abc import Callable

from gradio.context import LocalContext

from hat_arch.progress import Progress


class ClientGone(Exception):
    """The client of the request that runs in this thread disconnected."""


def client_connected() -> bool:
    """Whether the event this thread runs is still among the queue's active jobs and alive; True outside a queued
    request (a handler called directly). The event is found as :class:`gradio.Progress` finds it, by the event id in
    Gradio's context."""
    blocks, event_id = LocalContext.blocks.get(None), LocalContext.event_id.get(None)
    if blocks is None or event_id is None:
        return True
    for job in blocks._queue.active_jobs:
        for event in job or ():
            if event._id == event_id:
                return event.alive
    return False  # cancelled: the queue has let go of it


def check_client() -> None:
    """:class:`ClientGone` if the client of this request disconnected."""
    if not client_connected():
        raise ClientGone


def while_connected(progress: Callable[[int, int], None]) -> Progress:
    """``progress`` that first stops the run (:class:`ClientGone`) if the client disconnected."""

    def report(done: int, total: int) -> None:
        check_client()
        progress(done, total)

    return report
