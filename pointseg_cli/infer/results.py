"""What a ``pointseg segment`` batch did: one :class:`FileResult` per input, in a :class:`SegmentBatchResult`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pointseg_cli.errors import check_choice

#: Outcome of one input.
STATUSES = ("ok", "skipped", "failed")


@dataclass(frozen=True)
class FileResult:
    """What happened to one input.

    Attributes
    ----------
    path : Path
        The input.
    status : {"ok", "skipped", "failed"}
        ``skipped``: all its outputs existed; ``failed``: see ``message``.
    message : str
        Why it was skipped or failed (empty when ok).
    shape : tuple of int or None
        Canonical image shape (None when the file could not be read).
    seconds : float or None
        Wall time of the segmentation (ok only).
    voxels_per_second : float or None
        Spatial voxels per second (ok only).
    provider : str
        Backend that ran the model (e.g. ``CPUExecutionProvider``, ``torch-cuda``); empty when no
        model was run.
    outputs : dict of str to Path
        Files written, by kind (``labels``, ``instances``, ``objects``, ``probabilities``, ``preview``).
    model : str
        Name of the model used (empty when none was).
    """

    path: Path
    status: str
    message: str = ""
    shape: tuple[int, ...] | None = None
    seconds: float | None = None
    voxels_per_second: float | None = None
    provider: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    model: str = ""

    def __post_init__(self) -> None:
        check_choice("status", self.status, STATUSES)


@dataclass(frozen=True)
class ModelInfo:
    """Which model made an output: its name, the sha256 of its file and where it lies."""

    name: str
    sha256: str | None
    path: Path | None = None


@dataclass(frozen=True)
class SegmentBatchResult:
    """Per-file results of :func:`~pointseg_cli.infer.batch.run_segment`, in input order.

    ``out_dir`` is None when outputs were written beside each input; ``models`` lists the
    models used, in the order they were loaded.
    """

    files: tuple[FileResult, ...]
    out_dir: Path | None
    models: tuple[ModelInfo, ...] = ()

    def _count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def n_ok(self) -> int:
        return self._count("ok")

    @property
    def n_skipped(self) -> int:
        return self._count("skipped")

    @property
    def n_failed(self) -> int:
        return self._count("failed")

    @property
    def failures(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == "failed")
