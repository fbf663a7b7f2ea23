"""Shared CLI plumbing: global options, console, Rich progress, error rendering.

Only modules under ``pointseg_cli/cli`` import typer or rich.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pointseg_cli.progress import ProgressCallback

#: Console for results (tables, summaries) and one for diagnostics.
console = Console()
err_console = Console(stderr=True)


@dataclass
class CliState:
    """Global options given before the subcommand (``pointseg --quiet segment ...``)."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False
    extra: dict[str, object] = field(default_factory=dict)


#: The state of the running invocation (set by the root callback); lets commands that do not take a
#: ``ctx`` parameter still honour ``--quiet``/``--debug``.
_CURRENT_STATE: ContextVar[CliState | None] = ContextVar("pointseg_cli_state", default=None)


def set_state(state: CliState) -> None:
    """Record the global options of the running invocation (called by the root callback)."""
    _CURRENT_STATE.set(state)


def get_state(ctx: typer.Context | None = None) -> CliState:
    """Return the global options: from ``ctx``'s root when given, else the running invocation's."""
    if ctx is not None:
        root = ctx.find_root()
        if isinstance(root.obj, CliState):
            return root.obj
    return _CURRENT_STATE.get() or CliState()


def setup_logging(state: CliState) -> None:
    """Configure the root logger for the chosen verbosity (stderr, no colours when piped)."""
    from rich.logging import RichHandler

    level = logging.WARNING
    if state.verbose == 1:
        level = logging.INFO
    elif state.verbose >= 2 or state.debug:
        level = logging.DEBUG
    if state.quiet:
        level = logging.ERROR
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pointseg", False):
            root.removeHandler(h)
    handler = RichHandler(console=err_console, show_path=False, show_time=False, markup=False)
    handler._pointseg = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    logging.getLogger("pointseg_cli").setLevel(level)


def progress_enabled(state: CliState | None = None) -> bool:
    """Progress bars only on an interactive terminal and when not ``--quiet``."""
    state = state or get_state()
    return not state.quiet and sys.stderr.isatty()


class RichProgress:
    """A :data:`~pointseg_cli.progress.ProgressCallback` drawn as Rich progress bars.

    Use as a context manager; each distinct ``task`` name gets its own bar. When progress is
    disabled (not a TTY, or ``--quiet``) it is a no-op so batch logs stay clean.
    """

    def __init__(self, enabled: bool | None = None, transient: bool = False) -> None:
        self.enabled = progress_enabled() if enabled is None else enabled
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._transient = transient

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=self._transient,
            )
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __call__(self, task: str, done: int, total: int) -> None:
        if self._progress is None:
            return
        tid = self._tasks.get(task)
        if tid is None:
            tid = self._progress.add_task(task, total=total or None)
            self._tasks[task] = tid
        self._progress.update(tid, completed=done, total=total or None)

    @property
    def callback(self) -> ProgressCallback:
        return self


def fail(message: str) -> None:
    """Print one red line on stderr (used for errors the CLI itself detects)."""
    from rich.markup import escape

    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
