"""Settings of one segmentation, and the output files they ask for.

:class:`SegmentOptions` holds the tiling and outputs of :func:`~pointseg_cli.infer.segment.segment_file`
(and of :func:`~pointseg_cli.infer.arrays.segment_array`); :func:`output_paths` names the files an
input gets under those options. :class:`~pointseg_cli.infer.config.SegmentConfig` extends the options
with the settings of a whole batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.infer.instance_outputs import INSTANCE_CHOICES
from pointseg_cli.infer.tiling import BLEND_MODES

PROBABILITY_FORMATS = ("tif", "zarr")


@dataclass(frozen=True)
class SegmentOptions:
    """Tiling and output settings of :func:`~pointseg_cli.infer.segment.segment_file`.

    Attributes
    ----------
    tile : tuple of int or None
        Spatial tile; ``None`` uses the model's training tile grown up to
        :data:`~pointseg_cli.infer.segment.TILE_GROWTH` times its voxels where larger tiles compute
        fewer overlapping voxels (:func:`~pointseg_cli.infer.tiling.grown_grid`).
    overlap : float
        Minimum tile overlap as a fraction of the tile (of the model's tile when ``tile`` is
        None: a grown tile keeps that overlap in voxels), in ``[0, 1)``.
    blend : {"gaussian", "linear", "constant"}
        Blend window.
    batch_size : int
        Tiles per model call.
    probabilities : {None, "tif", "zarr"}
        Also write float16 class probabilities ``(K+1, *spatial)``.
    preview : bool
        Also write a PNG: object outlines over the image (orthogonal views of a volume).
    edge_trim : int, optional
        Voxels at inner tile edges that get the minimum blend weight (default: a quarter of the
        overlap; 0 for the plain window). See :meth:`~pointseg_cli.infer.tiling.TileGrid.axis_windows`.
    stain : bool
        Apply the model's stain normalisation when it has one (``--no-stain-normalize`` sets
        False, for images whose stains are already normalised).
    instances : {"none", "auto", "centers", "distance", "components"}
        Also write object instances and their table (``auto``: ``centers`` when the model has a
        centre output, else ``distance``). See :mod:`pointseg_cli.infer.instances`.
    min_distance : float
        Instances: two object centres (or distance maxima) closer than this, in units of the finest
        voxel spacing, are one object.
    peak_threshold : float, optional
        Instances: smallest centre-map value (``centers``, default 0.3) or distance to the
        background (``distance``, default 0) that a marker may have.
    """

    tile: tuple[int, ...] | None = None
    overlap: float = 0.125
    blend: str = "gaussian"
    batch_size: int = 4
    probabilities: str | None = None
    preview: bool = False
    edge_trim: int | None = None
    stain: bool = True
    instances: str = "none"
    min_distance: float = 3.0
    peak_threshold: float | None = None

    def __post_init__(self) -> None:
        check_choice("blend", self.blend, BLEND_MODES)
        check_choice("instance method", self.instances, INSTANCE_CHOICES)
        if not 0.0 <= self.overlap < 1.0:
            raise ConfigError(f"overlap must be in [0, 1); got {self.overlap}")
        if self.edge_trim is not None and self.edge_trim < 0:
            raise ConfigError(f"edge trim must be >= 0; got {self.edge_trim}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1; got {self.batch_size}")
        if self.tile is not None and (len(self.tile) not in (2, 3) or any(int(t) < 1 for t in self.tile)):
            raise ConfigError(f"tile must have 2 or 3 positive sizes; got {self.tile}")
        if self.probabilities is not None:
            check_choice("probabilities format", self.probabilities, PROBABILITY_FORMATS)
        if not (math.isfinite(self.min_distance) and self.min_distance >= 0):
            raise ConfigError(f"min distance must be a finite number >= 0; got {self.min_distance}")
        if self.peak_threshold is not None and not (math.isfinite(self.peak_threshold) and self.peak_threshold >= 0):
            raise ConfigError(f"peak threshold must be a finite number >= 0; got {self.peak_threshold}")



def output_paths(out_dir: str | Path, stem: str, options: SegmentOptions, *, arrays: str = "tif") -> dict[str, Path]:
    """Final output paths for an input stem: ``labels`` and, when asked, ``instances`` and ``objects``,
    ``probabilities``, ``preview``.

    ``out_dir`` is the output folder; to write beside an input pass the input's folder. ``arrays``
    is the format of the labels and instances: ``tif`` (one process) or ``zarr`` (the Dask block
    mode, which also writes the probabilities as zarr).
    """
    out = Path(out_dir)
    paths = {"labels": out / f"{stem}.labels.{arrays}"}
    if getattr(options, "instances", "none") != "none":
        paths["instances"] = out / f"{stem}.instances.{arrays}"
        paths["objects"] = out / f"{stem}.objects.csv"
    if options.probabilities:
        fmt = "zarr" if arrays == "zarr" else options.probabilities
        paths["probabilities"] = out / f"{stem}.probabilities.{fmt}"
    if options.preview:
        paths["preview"] = out / f"{stem}.preview.png"
    return paths

