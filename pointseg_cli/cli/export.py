"""`pointseg export` (placeholder until its issue lands)."""

from __future__ import annotations

from pointseg_cli.errors import PointsegError


def command() -> None:
    """Not available yet in this build."""
    raise PointsegError("'pointseg export' is not available yet in this build")
