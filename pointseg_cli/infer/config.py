"""Settings of a ``pointseg segment`` batch: :class:`SegmentConfig`.

The tiling and outputs of :class:`~pointseg_cli.infer.options.SegmentOptions`, plus what concerns the
whole batch (precision, overwrite, axes and voxel size overrides, instances). Validated on
construction; a bad value raises :class:`~pointseg_cli.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.infer.options import SegmentOptions
from pointseg_cli.model.spec import PRECISION_CHOICES

#: Letters ``axes`` may use (S, samples, is read as C).
AXIS_LETTERS = "TZCYXS"


@dataclass(frozen=True)
class SegmentConfig(SegmentOptions):
    """Settings of a :func:`~pointseg_cli.infer.batch.run_segment` batch: the tiling and outputs of
    :class:`SegmentOptions`, plus the attributes below.

    Attributes
    ----------
    precision : {"auto", "fp32", "fp16"}
        Checkpoints: ``auto`` is fp16 on CUDA, fp32 on the CPU. ONNX models: fixed at export, a
        value other than ``auto`` must match it.
    overwrite : bool
        Redo inputs whose outputs all exist (otherwise they are skipped).
    axes : str, optional
        Override of the stored axes of every input, e.g. ``"CZYX"`` (letters T, Z, C, Y, X; S = C).
    voxel_size : tuple of float, optional
        Override of the stored voxel size in µm: one value, or one per spatial axis (see
        :func:`pointseg_cli.io.voxel.resolve_voxel_size`).
    instances : {"auto", "centers", "distance", "components", "none"}
        Object instances written with the labels (``<stem>.instances.tif``, ``<stem>.objects.csv``);
        ``auto`` (the default here) is ``centers`` for a model with a centre output, else
        ``distance``; ``none`` writes neither file.
    """

    precision: str = "auto"
    overwrite: bool = False
    axes: str | None = None
    voxel_size: tuple[float, ...] | None = None
    instances: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("precision", self.precision, PRECISION_CHOICES)
        if self.axes is not None:
            axes = str(self.axes).upper()
            if not axes or any(c not in AXIS_LETTERS for c in axes) or len(set(axes)) != len(axes):
                raise ConfigError(
                    f"axes must be distinct letters from {', '.join(AXIS_LETTERS)} (e.g. ZYX, CZYX, YXC); "
                    f"got {self.axes!r}"
                )
        if self.voxel_size is not None:
            from pointseg_cli.io.voxel import resolve_voxel_size

            resolve_voxel_size(None, self.voxel_size, ndim=len(self.voxel_size))  # positive, finite

    def provenance_options(self) -> dict[str, Any]:
        """The settings recorded with every output (see :func:`pointseg_cli.infer.outputs.provenance`)."""
        keys = ("tile", "overlap", "blend", "batch_size", "precision", "axes", "voxel_size", "stain", "probabilities",
                "instances", "min_distance", "peak_threshold")
        return {k: list(v) if isinstance(v, tuple) else v for k in keys for v in [getattr(self, k)]}
