"""Segment images and volumes: tiled, overlap-blended, streamed from disk to disk.

:func:`segment_file` reads an image lazily (memory-mapped TIFF or zarr), normalises it with the
model's training-time settings (statistics from a strided subsample of the whole image), runs the
streaming engine of :mod:`pointseg_cli.infer.stream` and writes ``<stem>.labels.tif`` (uint8 class
ids), with ``options.instances`` ``<stem>.instances.tif`` (uint32 object ids) and
``<stem>.objects.csv`` (:mod:`pointseg_cli.infer.instance_outputs`), and optionally
``<stem>.probabilities.tif|.zarr`` (float16 ``(K+1, *spatial)``) and ``<stem>.preview.png``.
Every output goes to a temporary name first and is renamed only when the whole image is done,
so an error or a kill leaves nothing under the final names.

:func:`~pointseg_cli.infer.arrays.segment_array` and :func:`~pointseg_cli.infer.arrays.segment_block`
(:mod:`pointseg_cli.infer.arrays`, importable from here too) run the same engine on an in-memory
array, the latter on one block plus its halo (the unit a Dask ``map_overlap`` layer would call).
The settings are :class:`~pointseg_cli.infer.options.SegmentOptions`, also importable from here.

Models trained with ``--stain-normalize`` carry a stain reference in their normalisation
(``normalization["stain"]``): the input's own stains are fitted once on the same subsample, each
slab is mapped onto the reference pixel by pixel, and the intensity statistics are computed on the
stain-normalised subsample, so inference sees the colours the network was trained on.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, ImageFormatError, ModelError
from pointseg_cli.infer.arrays import ArrayResult, segment_array, segment_block
from pointseg_cli.infer.instance_outputs import CentreSpool, IdsView, resolve_instance_method
from pointseg_cli.infer.options import PROBABILITY_FORMATS, SegmentOptions, output_paths
from pointseg_cli.infer.outputs import LabelWriter, ProbabilityWriter, complete_provenance, write_segment_preview
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.stream import Rows, run_stream
from pointseg_cli.infer.tiling import TileGrid, grown_grid, make_grid
from pointseg_cli.preprocess.normalize import Normalization, NormStats, apply_normalization, compute_stats
from pointseg_cli.preprocess.stain import StainModel, apply_stains, check_reference, fit_stains
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

__all__ = [
    "PREVIEW_SIZE",
    "PROBABILITY_FORMATS",
    "ArrayResult",
    "InputStatistics",
    "SegmentOptions",
    "SegmentResult",
    "input_statistics",
    "output_paths",
    "segment_array",
    "segment_block",
    "segment_file",
]

PREVIEW_SIZE = 1024

#: Without ``--tile`` the model's tile is grown up to this many times its voxels.
TILE_GROWTH = 4

#: Largest slab a grown tile may make the streaming engine hold (tile depth times the padded size
#: of the other axes): 2**25 voxels, 128 MB of float32 blend accumulator per model output channel.
MAX_SLAB_VOXELS = 2**25


@dataclass(frozen=True)
class SegmentResult:
    """What :func:`segment_file` did for one input."""

    input: Path
    labels: Path
    probabilities: Path | None
    preview: Path | None
    shape: tuple[int, ...]
    voxels: int
    seconds: float
    tiles: int
    provider: str
    voxel_size: tuple[float, ...] | None = None
    instances: Path | None = None
    objects: Path | None = None
    instance_method: str | None = None
    n_objects: int | None = None

    @property
    def voxels_per_second(self) -> float:
        return self.voxels / self.seconds if self.seconds > 0 else float("nan")


def _check_compatible(spatial: tuple[int, ...], channels: int, axes: str, name: str, predictor: Predictor) -> None:
    meta = predictor.metadata
    if len(spatial) != meta.ndim:
        raise ImageFormatError(
            f"model expects {meta.ndim}D images but '{name}' is {len(spatial)}D {axes} {spatial}"
            + (" (pass --axes if Z was read as channels)" if meta.ndim == 3 else "")
        )
    if channels != meta.channels:
        raise ImageFormatError(
            f"model expects {meta.channels} channel(s) but '{name}' has {channels} ({axes})"
        )


def _grid_for(spatial: tuple[int, ...], predictor: Predictor, options: SegmentOptions) -> TileGrid:
    """The aligned tile grid of an image: ``options.tile``, or the model's tile grown (:func:`_batch_for`)."""
    meta = predictor.metadata
    tile = tuple(options.tile) if options.tile is not None else tuple(meta.tile)
    if len(tile) != meta.ndim:
        raise ConfigError(f"tile must have {meta.ndim} sizes for this {meta.ndim}D model; got {tile}")
    base = make_grid(spatial, tile, overlap=options.overlap, divisor=meta.divisor, align=True)
    if options.tile is not None:
        return base
    return grown_grid(spatial, tile, overlap=options.overlap, divisor=meta.divisor,
                      max_voxels=TILE_GROWTH * int(np.prod(base.tile)), max_slab_voxels=MAX_SLAB_VOXELS)


def _batch_for(grid: TileGrid, predictor: Predictor, options: SegmentOptions) -> int:
    """Tiles per model call on ``grid``.

    Without ``options.tile`` the model's tile is grown up to :data:`TILE_GROWTH` times its voxels
    (fewer, larger tiles recompute fewer overlapping voxels; the grid does not depend on the batch
    size, so neither do the labels) and the batch shrinks by the growth, so that a model call holds
    no more voxels than ``batch_size`` model tiles, or one grown tile.
    """
    if options.tile is not None:
        return options.batch_size
    meta = predictor.metadata
    base = make_grid(grid.shape, tuple(meta.tile), overlap=options.overlap, divisor=meta.divisor, align=True)
    return max(1, options.batch_size * int(np.prod(base.tile)) // int(np.prod(grid.tile)))


def _norm_of(predictor: Predictor) -> Normalization:
    return Normalization.from_dict(predictor.metadata.normalization)


def _stain_of(predictor: Predictor, options: SegmentOptions) -> dict[str, Any] | None:
    """The model's stain reference, or None (the model has none, or ``options.stain`` is off)."""
    data = predictor.metadata.normalization.get("stain")
    if not data or not options.stain:
        return None
    try:
        return check_reference(data, what="the model's stain reference")
    except ConfigError as exc:
        raise ModelError(str(exc)) from None


@dataclass(frozen=True)
class InputStatistics:
    """Whole-image quantities that every tile of an image shares.

    ``stats``: intensity statistics (of the stain-normalised pixels when ``stain_source`` is
    set); ``stain_source``: the image's own stain model (:func:`~pointseg_cli.preprocess.stain.fit_stains`),
    or None when the model has no stain reference.
    """

    stats: NormStats
    stain_source: StainModel | None = None


def input_statistics(
    image_like: Any, predictor: Predictor, *, options: SegmentOptions | None = None, name: str = "image"
) -> InputStatistics:
    """Statistics of a whole image (array or ``LazyImage``, canonical order) for :func:`segment_block`."""
    options = options or SegmentOptions()
    norm, ref = _norm_of(predictor), _stain_of(predictor, options)
    lazy = hasattr(image_like, "subsample")
    has_c = image_like.info.channels > 1 if lazy else np.ndim(image_like) == predictor.metadata.ndim + 1
    ch_axis = -1 if has_c else None
    if ref is None:
        return InputStatistics(compute_stats(image_like, norm, channel_axis=ch_axis))
    sample = image_like.subsample() if lazy else np.asarray(image_like)
    source = fit_stains(sample, method=ref["method"], what=name)
    log.debug("%s: stain model %s fitted, mapped onto the model's reference", name, source[0].round(3).tolist())
    return InputStatistics(compute_stats(apply_stains(sample, source, ref), norm, channel_axis=ch_axis), source)


def segment_file(
    path: str | Path,
    out_dir: str | Path | None,
    predictor: Predictor,
    *,
    options: SegmentOptions | None = None,
    axes: str | None = None,
    voxel_size: Sequence[float] | None = None,
    provenance: Mapping[str, Any] | None = None,
    progress: ProgressCallback | None = None,
) -> SegmentResult:
    """Segment one image file and write its outputs atomically.

    Parameters
    ----------
    path : path-like
        TIFF / OME-TIFF / zarr image, 2D ``(Y, X)``, 2D RGB ``(Y, X, C)`` or 3D ``(Z, Y, X[, C])``.
    out_dir : path-like or None
        Output folder (created if missing); None writes beside the input.
    predictor : Predictor
        The model (its metadata gives classes, channels, normalisation, tile, divisor).
    options : SegmentOptions
        Tiling and outputs.
    axes : str, optional
        Override of the stored axes (``--axes``), e.g. ``"CZYX"``.
    voxel_size : sequence of float, optional
        Override of the stored voxel size in µm (``--voxel-size``; see
        :func:`pointseg_cli.io.voxel.resolve_voxel_size`). The voxel size used is written into
        every output.
    provenance : mapping, optional
        :func:`pointseg_cli.infer.outputs.provenance` of the model and options; the input's name,
        its voxel size and the tile used are added. Default: the model's class name and no hash.
    progress : callable, optional
        ``progress(task, done, total)`` per tile.

    Returns
    -------
    SegmentResult
    """
    from pointseg_cli.infer.instance_outputs import write_instances
    from pointseg_cli.io.images import atomic_output, open_image
    from pointseg_cli.io.voxel import resolve_voxel_size
    from pointseg_cli.io.writers import scratch_file

    options = options or SegmentOptions()
    t_start = time.perf_counter()
    image = open_image(path, axes=axes)
    info = image.info
    spatial = tuple(info.spatial_shape)
    _check_compatible(spatial, info.channels, info.axes, info.path.name, predictor)
    grid = _grid_for(spatial, predictor, options)
    vsize = resolve_voxel_size(info.voxel_size, voxel_size, ndim=len(spatial), name=info.path.name)
    prov = complete_provenance(provenance, model=str(getattr(predictor, "path", type(predictor).__name__)),
                               options=options, name=info.path.name, voxel_size=vsize, tile=tuple(grid.tile))
    norm, ref = _norm_of(predictor), _stain_of(predictor, options)
    ch_axis = -1 if info.channels > 1 else None
    whole = input_statistics(image, predictor, options=options, name=f"image '{info.path.name}'")
    stats, source = whole.stats, whole.stain_source
    image.release()

    def read_slab(lo: int, hi: int) -> np.ndarray:
        region = (slice(lo, hi), *(slice(None) for _ in spatial[1:]))
        raw = np.array(image.read(region))  # a private copy, so the mapped pages can be dropped
        image.release()
        return raw if ch_axis is not None else raw[..., None]

    def normalize(raw: np.ndarray) -> np.ndarray:
        if ref is not None and source is not None:
            raw = apply_stains(raw, source, ref)
        return apply_normalization(raw, stats, channel_axis=-1, clip=norm.clip)

    paths = output_paths(out_dir if out_dir is not None else Path(path).parent, info.stem, options)
    n_out = predictor.metadata.n_outputs
    spatial_axes = info.spatial_axes
    method = resolve_instance_method(options.instances, predictor.metadata)[0] if "instances" in paths else None
    inst = None
    with contextlib.ExitStack() as stack:
        tmp = {key: stack.enter_context(atomic_output(p)) for key, p in paths.items()}
        spool = None
        if method == "centers":  # the blended centre map, on disk beside the outputs until the ids are made
            spool = CentreSpool(stack.enter_context(scratch_file(paths["instances"].with_name(f"{info.stem}.centers"))),
                                spatial)
            stack.callback(spool.close)
        labels_w = LabelWriter(tmp["labels"], spatial, axes=spatial_axes, classes=predictor.metadata.classes,
                               voxel_size=vsize, provenance=prov)
        stack.callback(labels_w.close)
        prob_w = None
        if "probabilities" in tmp:
            prob_w = ProbabilityWriter(tmp["probabilities"], (n_out, *spatial), axes="C" + spatial_axes,
                                       fmt=options.probabilities or "tif", chunk0=grid.tile[0], voxel_size=vsize,
                                       provenance=prov, name=paths["probabilities"].name)
            stack.callback(prob_w.close)

        def sink(rows: Rows) -> None:
            labels_w.write(rows.start, rows.labels)
            if prob_w is not None and rows.probabilities is not None:
                prob_w.write(rows.start, rows.probabilities)
            if spool is not None and rows.centers is not None:
                spool.write(rows.centers)

        outputs = ("labels",) + (("probabilities",) if prob_w is not None else ()) + (("centers",) if spool else ())
        tiles = run_stream(
            read_slab, normalize, predictor, grid, sink, outputs=outputs, blend=options.blend,
            edge_trim=options.edge_trim, batch_size=_batch_for(grid, predictor, options), progress=progress,
            task=info.stem,
        )
        labels_w.flush()
        if prob_w is not None:
            prob_w.flush()
        ids = None
        if method is not None:
            inst, ids = write_instances(
                tmp["labels"], tmp["instances"], tmp["objects"], method=method,
                centers=spool.array() if spool is not None else None, image=image, axes=spatial_axes,
                classes=predictor.metadata.classes, voxel_size=vsize, provenance=prov,
                min_distance=options.min_distance, peak_threshold=options.peak_threshold,
            )
        if "preview" in tmp:
            def display(raw: np.ndarray) -> np.ndarray:  # as the model saw the pixels, in [0, 1]
                if ref is not None and source is not None:
                    raw = apply_stains(raw, source, ref)
                return apply_normalization(raw, stats, channel_axis=ch_axis, clip=True)

            write_segment_preview(tmp["preview"], image, labels_w, spatial, voxel_size=vsize, provenance=prov,
                                  display=display, max_size=PREVIEW_SIZE,
                                  instances=IdsView(ids) if ids is not None else None)
        del ids
        labels_w.close()
        if prob_w is not None:
            prob_w.close()
    seconds = time.perf_counter() - t_start
    voxels = int(np.prod(spatial))
    log.info("%s: %s in %.2f s (%.2f Mvox/s, %d tiles, %s)", info.stem, spatial, seconds,
             voxels / max(seconds, 1e-9) / 1e6, tiles, predictor.provider)
    return SegmentResult(
        input=Path(path), labels=paths["labels"], probabilities=paths.get("probabilities"),
        preview=paths.get("preview"), shape=tuple(info.shape), voxels=voxels, seconds=seconds,
        tiles=tiles, provider=predictor.provider, voxel_size=vsize, instances=paths.get("instances"),
        objects=paths.get("objects"), instance_method=method, n_objects=inst.n_instances if inst else None,
    )
