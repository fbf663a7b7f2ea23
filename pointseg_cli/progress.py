"""Progress reporting protocol shared by the library and the CLI.

The library never prints. Long-running functions accept an optional ``progress`` callback and
call it as ``progress(task, done, total)``: ``task`` is a short human-readable name ("tiles",
"epoch 3"), ``done`` and ``total`` are counts (``total`` may be 0 when unknown). The CLI renders
these calls with Rich; tests can pass a list's ``append``-like recorder.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, int, int], None]


def noop_progress(task: str, done: int, total: int) -> None:  # noqa: ARG001
    """A progress callback that ignores every update."""
