"""Root Typer application: global options, subcommand registration, error -> exit code mapping.

Exit codes: 0 success; 2 invalid input or usage (one red line, no traceback unless ``--debug``);
1 a batch finished with some inputs failed, or an unexpected internal error.
"""

from __future__ import annotations

import logging
import signal
import sys

import typer
from typer.core import TyperGroup

from pointseg_cli import __version__
from pointseg_cli.cli import annotate_import, demo_data, evaluate, export, models, objectness, segment, train
from pointseg_cli.cli._common import CliState, err_console, fail, get_state, set_state, setup_logging
from pointseg_cli.errors import BatchError, PointsegError

log = logging.getLogger(__name__)


class PointsegGroup(TyperGroup):
    """Root group that turns library errors into exit codes and one-line messages."""

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
    """Global options apply to every subcommand and come before it."""
    ctx.obj = CliState(verbose=verbose, quiet=quiet, debug=debug)
    set_state(ctx.obj)
    setup_logging(ctx.obj)


app.command("annotate-import", no_args_is_help=True)(annotate_import.command)
app.command("objectness", no_args_is_help=True)(objectness.command)
app.command("train", no_args_is_help=True)(train.command)
app.command("export", no_args_is_help=True)(export.command)
app.command("segment", no_args_is_help=True)(segment.command)
app.command("evaluate", no_args_is_help=True)(evaluate.command)
app.command("demo-data", no_args_is_help=True)(demo_data.command)
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
