"""Shared CLI plumbing: global options, console, Rich progress, error rendering.

Only modules under ``pointseg_cli/cli`` import typer or rich.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

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
from typer.core import TyperCommand, TyperGroup

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


#: The "Examples" section of each command's help, by command path (also used in the docs' style).
EXAMPLES: dict[str, tuple[str, ...]] = {
    "annotate-import": (
        "pointseg annotate-import clicks/*.csv --images data/ --classes nucleus --out points.csv",
        "pointseg annotate-import cells.geojson --images data/ --class-map Tumor=tumour --out points.csv",
        "pointseg annotate-import --from-masks data/masks --images data/ --jitter 3 --out points.csv",
    ),
    "objectness": (
        "pointseg objectness points.csv images/ --out objectness/ --preview",
        "pointseg objectness points.csv volumes/ --out objectness/ --voxel-size 2,0.5,0.5",
        "pointseg objectness points.csv images/ --out objectness/ --tune masks/ --diffuse 10",
    ),
    "train": (
        "pointseg train points.csv images/",
        "pointseg train points.csv images/ --out runs/nuclei --val-masks masks/ --epochs 30",
        "pointseg train points.csv volumes/ --out runs/3d --arch unet3d --crop 32,64,64 --batch-size 4",
        "pointseg train points.csv he_tiles/ --out runs/he --stain-normalize he_tiles/reference.tif",
        "pointseg train sim/points.trainval.csv sim/ --out runs/sim --equalize --w 14 --val-images sim_003",
    ),
    "export": (
        "pointseg export runs/nuclei --out nuclei.onnx",
        "pointseg export runs/nuclei --out nuclei16.onnx --precision fp16",
    ),
    "segment": (
        "pointseg segment volume.tif",
        "pointseg segment data/ --out-dir seg --model nuclei.onnx --preview",
        "pointseg segment stack.tif --voxel-size 2,0.5,0.5 --probabilities zarr",
    ),
    "evaluate": (
        "pointseg evaluate seg/ masks/ --gt-binary",
        "pointseg evaluate seg/ masks/ --gt-binary --instances --json scores.json",
    ),
    "demo-data": (
        "pointseg demo-data demo3d --kind 3d-nuclei --n 4 --size 32x128x128",
        "pointseg demo-data demo_he --kind 2d-he --n 8 --difficulty hard --seed 1",
        "pointseg demo-data nuclei2d --kind 2d-gray --n 8",
        "pointseg demo-data sim --kind 3d-sim --n 5",
    ),
    "models": ("pointseg models list", "pointseg models fetch NAME"),
    "models list": ("pointseg models list",),
    "models fetch": ("pointseg models fetch nuclei-3d",),
}


def command_help(doc: str | None, name: str) -> str:
    """A command's help: its docstring, then the same **Examples** section as every other command."""
    import inspect

    text = inspect.cleandoc(doc or "")
    examples = EXAMPLES.get(name)
    if not examples:
        return text
    return text + "\n\n**Examples**\n\n```\n" + "\n".join(examples) + "\n```\n"


_TYPE_WORDS = {"int": "INTEGER", "float": "NUMBER", "str": "TEXT", "Path": "PATH", "path": "PATH", "bool": ""}


def tidy_params(params: list[Any]) -> list[Any]:
    """Quiet the types column of the help: nothing for flags and arguments, one plain word for values.

    Newer typer versions print ``<bool>``, ``<int>``, ``<list[str]>``; options that set their own
    ``metavar`` keep it.
    """
    for p in params:
        if getattr(p, "_pointseg_tidy", False):
            continue
        p._pointseg_tidy = True
        if getattr(p, "param_type_name", "") == "argument":
            if getattr(p, "metavar", None) is None:
                p.metavar = str(p.name).upper() + ("..." if getattr(p, "nargs", 1) != 1 else "")
            if hasattr(p, "display_type_rich"):
                p.display_type_rich = lambda ctx: None  # the argument's name says what it is
            continue
        if getattr(p, "is_flag", False) or getattr(p, "count", False):
            p.metavar = ""
        elif getattr(p, "metavar", None) is None:
            bare = getattr(p, "bare_type", None)
            label = bare() if callable(bare) else getattr(getattr(p, "type", None), "name", "text")
            label = str(label).split("|")[0].strip()
            p.metavar = _TYPE_WORDS.get(label, label.upper())
    return params


class TidyCommand(TyperCommand):
    """A command whose help has no type noise (see :func:`tidy_params`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return tidy_params(super().get_params(ctx))


class TidyGroup(TyperGroup):
    """A command group whose help has no type noise (see :func:`tidy_params`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return tidy_params(super().get_params(ctx))
