"""Segment images and volumes: tiled, overlap-blended, streamed from disk to disk.

:func:`segment_file` reads an image lazily (memory-mapped TIFF or zarr), normalises it with the
model's training-time settings (statistics from a strided subsample of the whole image), runs the
streaming engine of :mod:`pointseg_cli.infer.stream` and writes ``<stem>.labels.tif`` (uint8 class
ids), with ``options.instances`` ``<stem>.instances.tif`` (uint32 object ids) and
``<stem>.objects.csv`` (:mod:`pointseg_cli.infer.instance_outputs`), and optionally
``<stem>.probabilities.tif|.zarr`` (float16 ``(K+1, *spatial)``) and ``<stem>.preview.png``.
Every output goes to a temporary name first and is renamed only when the whole image is done,
so an error or a kill leaves nothing under the final names.

:func:`segment_array` and :func:`segment_block` run the same engine on an in-memory array, the
latter on one block plus its halo (the unit a Dask ``map_overlap`` layer would call).

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

from pointseg_cli.errors import ConfigError, ImageFormatError, ModelError, check_choice
from pointseg_cli.infer.instance_outputs import INSTANCE_CHOICES, CentreSpool, IdsView, resolve_instance_method
from pointseg_cli.infer.outputs import LabelWriter, ProbabilityWriter, complete_provenance, write_segment_preview
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.stream import Rows, run_stream
from pointseg_cli.infer.tiling import BLEND_MODES, TileGrid, make_grid
from pointseg_cli.preprocess.normalize import Normalization, NormStats, apply_normalization, compute_stats
from pointseg_cli.preprocess.stain import StainModel, apply_stains, check_reference, fit_stains
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

PROBABILITY_FORMATS = ("tif", "zarr")
PREVIEW_SIZE = 1024


@dataclass(frozen=True)
class SegmentOptions:
    """Tiling and output settings of :func:`segment_file`.

    Attributes
    ----------
    tile : tuple of int or None
        Spatial tile; ``None`` uses the model's training tile.
    overlap : float
        Minimum tile overlap as a fraction of the tile, in ``[0, 1)``.
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


def output_paths(out_dir: str | Path, stem: str, options: SegmentOptions) -> dict[str, Path]:
    """Final output paths for an input stem: ``labels`` and, when asked, ``instances`` and ``objects``,
    ``probabilities``, ``preview``.

    ``out_dir`` is the output folder; to write beside an input pass the input's folder.
    """
    out = Path(out_dir)
    paths = {"labels": out / f"{stem}.labels.tif"}
    if getattr(options, "instances", "none") != "none":
        paths["instances"] = out / f"{stem}.instances.tif"
        paths["objects"] = out / f"{stem}.objects.csv"
    if options.probabilities:
        paths["probabilities"] = out / f"{stem}.probabilities.{options.probabilities}"
    if options.preview:
        paths["preview"] = out / f"{stem}.preview.png"
    return paths


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
    meta = predictor.metadata
    tile = tuple(options.tile) if options.tile is not None else tuple(meta.tile)
    if len(tile) != meta.ndim:
        raise ConfigError(f"tile must have {meta.ndim} sizes for this {meta.ndim}D model; got {tile}")
    return make_grid(spatial, tile, overlap=options.overlap, divisor=meta.divisor)


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
            edge_trim=options.edge_trim, batch_size=options.batch_size, progress=progress, task=info.stem,
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


@dataclass(frozen=True)
class ArrayResult:
    """In-memory output of :func:`segment_array`.

    ``labels`` ``(*spatial)`` uint8; ``logits`` ``(K+1, *spatial)`` float32 blended logits (only
    when requested).
    """

    labels: np.ndarray
    logits: np.ndarray | None = None


def segment_array(
    image: np.ndarray,
    predictor: Predictor,
    *,
    options: SegmentOptions | None = None,
    stats: NormStats | None = None,
    stain_source: StainModel | None = None,
    return_logits: bool = False,
    progress: ProgressCallback | None = None,
) -> ArrayResult:
    """Segment an in-memory image in canonical order ``([Z,] Y, X[, C])``.

    ``stats`` fixes the normalisation statistics and ``stain_source`` the image's stain model
    (pass the whole image's, from :func:`input_statistics`, when ``image`` is one block of a
    bigger one); by default both are computed from ``image``. ``stain_source`` is used only
    when the model has a stain reference and ``options.stain`` is on.
    """
    options = options or SegmentOptions()
    meta = predictor.metadata
    channels = meta.channels
    spatial = tuple(image.shape[: meta.ndim])
    has_c = image.ndim == meta.ndim + 1
    _check_compatible(spatial, image.shape[-1] if has_c else 1, "array", "array", predictor)
    norm, ref = _norm_of(predictor), _stain_of(predictor, options)
    if stats is None or (ref is not None and stain_source is None):
        whole = input_statistics(image, predictor, options=options, name="array")
        stats = whole.stats if stats is None else stats
        stain_source = whole.stain_source if stain_source is None else stain_source
    grid = _grid_for(spatial, predictor, options)
    labels = np.zeros(spatial, dtype=np.uint8)
    logits = np.zeros((meta.n_outputs, *spatial), dtype=np.float32) if return_logits else None

    def read_slab(lo: int, hi: int) -> np.ndarray:
        x = image[lo:hi]
        return x if has_c else x.reshape(*x.shape, channels)

    def normalize(raw: np.ndarray) -> np.ndarray:
        if ref is not None and stain_source is not None:
            raw = apply_stains(raw, stain_source, ref)
        return apply_normalization(raw, stats, channel_axis=-1, clip=norm.clip)

    def sink(rows: Rows) -> None:
        labels[rows.start : rows.stop] = rows.labels
        if logits is not None and rows.logits is not None:
            logits[:, rows.start : rows.stop] = rows.logits

    run_stream(
        read_slab, normalize, predictor, grid, sink, outputs=("labels", "logits") if return_logits else ("labels",),
        blend=options.blend, edge_trim=options.edge_trim, batch_size=options.batch_size, progress=progress,
    )
    return ArrayResult(labels=labels, logits=logits)


def segment_block(
    block: np.ndarray,
    predictor: Predictor,
    *,
    halo: tuple[int, ...],
    stats: NormStats,
    stain_source: StainModel | None = None,
    options: SegmentOptions | None = None,
) -> np.ndarray:
    """Labels of the core of ``block`` (a block plus ``halo`` voxels on each side of each spatial axis).

    The building block for a Dask ``map_overlap`` layer: pure, no global state, statistics of the
    whole image passed in (``stats`` and, for a model with a stain reference, ``stain_source``;
    both from :func:`input_statistics` of the whole image). Returns uint8 labels of shape
    ``block spatial shape - 2 * halo``.
    """
    ndim = predictor.metadata.ndim
    if len(halo) != ndim or any(h < 0 for h in halo):
        raise ConfigError(f"halo must have {ndim} non-negative sizes; got {halo}")
    if stain_source is None and _stain_of(predictor, options or SegmentOptions()) is not None:
        raise ConfigError(
            "the model stain-normalises its input: pass the whole image's stain_source (input_statistics) "
            "so that every block gets the same colour mapping"
        )
    labels = segment_array(block, predictor, options=options, stats=stats, stain_source=stain_source).labels
    core = tuple(slice(h, s - h) for h, s in zip(halo, labels.shape, strict=True))
    return labels[core]

