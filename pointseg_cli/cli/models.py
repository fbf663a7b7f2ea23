"""`pointseg models` (placeholder until its issue lands)."""

from __future__ import annotations

import typer

from pointseg_cli.errors import PointsegError

app = typer.Typer(help="List and fetch pretrained models.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Not available yet in this build."""
    raise PointsegError("'pointseg models list' is not available yet in this build")
