"""Root Typer application: global options, subcommand registration, error -> exit code mapping.

Exit codes: 0 success; 2 invalid input or usage (one red line, no traceback unless ``--debug``);
1 a batch finished with some inputs failed, or an unexpected internal error.
"""

from __future__ import annotations

import logging
import re
import signal
import sys
from typing import Any

import typer

from pointseg_cli import __version__
from pointseg_cli.cli import annotate_import, demo_data, evaluate, export, models, objectness, segment, train
from pointseg_cli.cli._common import (
    CliState,
    TidyCommand,
    TidyGroup,
    command_help,
    err_console,
    fail,
    get_state,
    set_state,
    setup_logging,
)
from pointseg_cli.errors import BatchError, PointsegError

log = logging.getLogger(__name__)

#: Global flags that may also come after the subcommand (``pointseg segment x.tif -q``).
GLOBAL_FLAGS = ("-q", "--quiet", "--verbose", "--debug")
_VERBOSE = re.compile(r"-v+")


def hoist_global_flags(args: list[str], commands: Any) -> list[str]:
    """Move global flags found after the subcommand in front of it, so they work in either place.

    Only flags that take no value are moved, and nothing after a ``--`` separator.
    """
    i = next((k for k, arg in enumerate(args) if arg == "--" or not arg.startswith("-")), None)
    if i is None or args[i] not in commands:
        return args
    moved, kept = [], []
    for j, arg in enumerate(args[i + 1 :], start=i + 1):
        if arg == "--":
            kept.extend(args[j:])
            break
        (moved if arg in GLOBAL_FLAGS or _VERBOSE.fullmatch(arg) else kept).append(arg)
    return [*args[:i], *moved, args[i], *kept]


class PointsegGroup(TidyGroup):
    """Root group: global flags before or after the subcommand; library errors → exit codes and one line."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        return super().parse_args(ctx, hoist_global_flags(list(args), self.commands))

    def invoke(self, ctx: typer.Context) -> object:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PointsegError as exc:
            if get_state(ctx).debug:
                raise
            fail(str(exc))
            raise typer.Exit(code=exc.exit_code) from None
        except BatchError as exc:
            if get_state(ctx).debug:
                raise
            fail(str(exc))
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            fail("interrupted")
            raise typer.Exit(code=130) from None


app = typer.Typer(
    name="pointseg",
    cls=PointsegGroup,
    help=(
        "Point-supervised segmentation of microscopy images and volumes "
        "(Li, Dey et al., ISBI 2021): click one point per object, train, segment."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"pointseg {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (-vv for debug)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors; no progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Global options apply to every subcommand; they may come before or after it."""
    ctx.obj = CliState(verbose=verbose, quiet=quiet, debug=debug)
    set_state(ctx.obj)
    setup_logging(ctx.obj)


for _name, _module in (
    ("annotate-import", annotate_import), ("objectness", objectness), ("train", train), ("export", export),
    ("segment", segment), ("evaluate", evaluate), ("demo-data", demo_data),
):
    app.command(_name, no_args_is_help=True, cls=TidyCommand, help=command_help(_module.command.__doc__, _name))(
        _module.command
    )
app.add_typer(models.app, name="models")


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (a batch scheduler's time limit, ``kill``): unwind, so temporary files and locks are removed."""
    raise SystemExit(128 + signum)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except Exception:  # noqa: BLE001 - an unexpected internal error: exit 1 with the traceback
        err_console.print_exception(show_locals=False)
        sys.exit(1)
