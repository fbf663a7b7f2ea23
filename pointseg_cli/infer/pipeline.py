"""A few threads joined by bounded queues, for the streaming engine.

Each stage runs in a :class:`Stage` thread and passes work to the next through a
:class:`queue.Queue` with a small ``maxsize``, so that at most a few items are in flight and
memory stays bounded. Waits poll a shared stop event (and, in the calling thread, the stages'
errors), so that the first error anywhere ends every stage and is re-raised in the caller.
Numerical work in the stages (numpy, onnxruntime) releases the GIL, so the stages overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable

#: End of a stream of items.
DONE = object()
#: What :func:`get` returns once the pipeline is stopped.
STOPPED = object()

_POLL_S = 0.1


class Stage(threading.Thread):
    """A daemon thread whose exception is kept for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread and re-raised there
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def check_all(stages: Iterable[Stage]) -> None:
    """Re-raise the first error of ``stages``."""
    for stage in stages:
        stage.check()


def put(q: queue.Queue, item: object, stop: threading.Event, check: Callable[[], None] | None = None) -> bool:
    """Put ``item`` on ``q``, waiting for room; False when ``stop`` is set first.

    ``check`` runs while waiting (the calling thread passes one that re-raises the stages' errors).
    """
    while not stop.is_set():
        if check is not None:
            check()
        try:
            q.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event, check: Callable[[], None] | None = None) -> object:
    """The next item of ``q``, or :data:`STOPPED` once ``stop`` is set (``check`` as for :func:`put`)."""
    while not stop.is_set():
        if check is not None:
            check()
        try:
            return q.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return STOPPED


def join(stages: Iterable[Stage], check: Callable[[], None]) -> None:
    """Wait until every stage has ended, running ``check`` meanwhile."""
    for stage in stages:
        while stage.is_alive():
            check()
            stage.join(timeout=_POLL_S)
    check()
