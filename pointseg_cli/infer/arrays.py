"""Segment an in-memory image, or one block of a bigger image plus its halo.

:func:`segment_array` runs the streaming engine of :mod:`pointseg_cli.infer.stream` on an array in
canonical order, with the same normalisation, stain mapping and tiling as
:func:`~pointseg_cli.infer.segment.segment_file`; :func:`segment_block` runs it on one block plus
its halo and keeps the core (the unit a Dask ``map_overlap`` layer would call).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import ConfigError
from pointseg_cli.infer.options import SegmentOptions
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.stream import Rows, run_stream
from pointseg_cli.preprocess.normalize import NormStats, apply_normalization
from pointseg_cli.preprocess.stain import StainModel, apply_stains
from pointseg_cli.progress import ProgressCallback


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
    (pass the whole image's, from :func:`~pointseg_cli.infer.segment.input_statistics`, when
    ``image`` is one block of a bigger one); by default both are computed from ``image``.
    ``stain_source`` is used only when the model has a stain reference and ``options.stain`` is on.
    """
    from pointseg_cli.infer.segment import (
        _batch_for,
        _check_compatible,
        _grid_for,
        _norm_of,
        _stain_of,
        input_statistics,
    )

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
        blend=options.blend, edge_trim=options.edge_trim, batch_size=_batch_for(grid, predictor, options),
        progress=progress,
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
    both from :func:`~pointseg_cli.infer.segment.input_statistics` of the whole image). Returns
    uint8 labels of shape ``block spatial shape - 2 * halo``.
    """
    from pointseg_cli.infer.segment import _stain_of

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

