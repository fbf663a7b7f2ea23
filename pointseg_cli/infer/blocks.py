"""Segment one region of a large image on the image's *global* tile grid, so blocks equal the whole.

A worker of the distributed mode segments one block of a volume. For its labels to equal the
single-process result voxel for voxel, every voxel of the block must receive exactly the tiles it
receives in :func:`~pointseg_cli.infer.stream.run_stream`, with the same blend weights, summed in
the same order. This module guarantees that by construction:

* the tile grid is the grid of the **whole** image (the one :func:`~pointseg_cli.infer.segment.segment_file`
  makes); a block never makes a grid of its own, so tile positions and the edge-trimmed blend windows of
  the first and last tiles are the global ones;
* a block runs every global tile that intersects it (its *extent*, the union of those tiles, is
  the halo it reads), and only those: they are exactly the tiles that contribute to its voxels;
* each tile sees the same input pixels (same region of the image; end padding reflects the
  image's last voxels, which a block touching the end reads too, so it is the same padding), normalised
  by the same whole-image statistics, element by element;
* weighted logits are accumulated in float32 starting from zero, tile by tile in lexicographic
  grid order, which is the order of the streaming engine (slab by slab, in-plane tiles in
  ``numpy.ndindex`` order); the class id is the argmax of that sum (no division, as there).

So the block's labels (and centre map) are bitwise the whole-image ones whenever the model gives
the same outputs for a tile whatever else is in its batch (true of onnxruntime on the CPU; PyTorch's
CPU convolutions and GPU kernels chosen per batch size may differ in the last bits). Blocks need not align with tiles:
the cost of a block boundary is the tiles that straddle it, run once on each side.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, ModelError
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.tiling import TileGrid, pad_to

log = logging.getLogger(__name__)

Region = tuple[slice, ...]


@dataclass(frozen=True)
class RegionResult:
    """Outputs of :func:`predict_region` for one region.

    ``labels`` ``(*region shape)`` uint8; ``probabilities`` ``(K+1, *region shape)`` float16 or None;
    ``tiles``: tiles run (including those shared with neighbouring blocks); ``centers``
    ``(*region shape)`` float32 blended object-centre map, or None.
    """

    labels: np.ndarray
    probabilities: np.ndarray | None
    tiles: int
    centers: np.ndarray | None = None


def _check_region(grid: TileGrid, region: Sequence[slice]) -> Region:
    if len(region) != grid.ndim:
        raise ConfigError(f"region needs {grid.ndim} slices for a {grid.ndim}D grid; got {len(region)}")
    out = []
    for a, sl in enumerate(region):
        lo, hi, step = sl.indices(grid.shape[a])
        if step != 1 or hi <= lo:
            raise ConfigError(f"region must be a non-empty unit-step box inside {grid.shape}; got {tuple(region)}")
        out.append(slice(lo, hi))
    return tuple(out)


def covering_tiles(grid: TileGrid, region: Sequence[slice]) -> tuple[tuple[int, ...], ...]:
    """Per axis, the indices of the grid's tiles that intersect ``region`` (ascending)."""
    region = _check_region(grid, region)
    return tuple(
        tuple(i for i, s in enumerate(grid.starts[a]) if s < sl.stop and s + grid.tile[a] > sl.start)
        for a, sl in enumerate(region)
    )


def region_extent(grid: TileGrid, region: Sequence[slice]) -> Region:
    """The box of the padded image that the tiles covering ``region`` read (the block plus its halo)."""
    idx = covering_tiles(grid, region)
    return tuple(
        slice(grid.starts[a][ix[0]], grid.starts[a][ix[-1]] + grid.tile[a]) for a, ix in enumerate(idx)
    )


def _tile_weight(windows: list[list[np.ndarray]], index: tuple[int, ...]) -> np.ndarray:
    # The same product (in float64, then float32) as the streaming engine's blender.
    w = np.ones((), dtype=np.float64)
    for a, i in enumerate(index):
        w = np.multiply.outer(w, windows[a][i])
    return w.astype(np.float32)


def predict_region(
    read: Callable[[Region], np.ndarray],
    normalize: Callable[[np.ndarray], np.ndarray],
    predictor: Predictor,
    grid: TileGrid,
    region: Sequence[slice],
    *,
    blend: str = "gaussian",
    edge_trim: int | None = None,
    batch_size: int = 4,
    probabilities: bool = False,
    centers: bool = False,
) -> RegionResult:
    """Labels (and probabilities, centres) of ``region`` of the image that ``grid`` covers.

    Parameters
    ----------
    read : callable
        ``read(box)`` returns raw channel-last pixels ``(*box shape, C)`` of a box inside the image
        (``box`` is clipped to ``grid.shape``).
    normalize : callable
        Raw channel-last pixels to normalised float32, element by element (whole-image statistics).
    predictor : Predictor
        Maps ``(N, C, *tile)`` to ``(N, K+1, *tile)`` logits.
    grid : TileGrid
        The grid of the **whole** image.
    region : sequence of slice
        The block, inside ``grid.shape``.
    blend, edge_trim, batch_size
        As for :func:`~pointseg_cli.infer.stream.run_stream` (use the same values as the whole run).
    probabilities : bool
        Also return float16 softmax probabilities ``(K+1, *region shape)``.
    centers : bool
        Also return the blended object-centre map (the model's ``centers`` output), accumulated
        as one more channel beside the logits and normalised as the streaming engine does, so it
        equals that engine's map bitwise.

    Returns
    -------
    RegionResult
    """
    region = _check_region(grid, region)
    if centers and not getattr(predictor.metadata, "has_centers", False):
        raise ModelError("the model has no centre output")
    idx = covering_tiles(grid, region)
    extent = region_extent(grid, region)
    box = tuple(slice(e.start, min(e.stop, n)) for e, n in zip(extent, grid.shape, strict=True))
    data = pad_to(read(box), tuple(e.stop - e.start for e in extent))
    windows = [grid.axis_windows(a, blend, edge_trim=edge_trim) for a in range(grid.ndim)]
    n_out = predictor.metadata.n_outputs
    rshape = tuple(sl.stop - sl.start for sl in region)
    n_acc = n_out + int(centers)
    acc = np.zeros((n_acc, *rshape), dtype=np.float32)
    order = list(itertools.product(*idx))  # lexicographic, as the streaming engine adds its tiles
    for b in range(0, len(order), batch_size):
        group = order[b : b + batch_size]
        tiles = [
            tuple(slice(grid.starts[a][i] - extent[a].start, grid.starts[a][i] - extent[a].start + grid.tile[a])
                  for a, i in enumerate(t))
            for t in group
        ]
        raw = np.stack([data[sl] for sl in tiles])
        batch = np.moveaxis(normalize(raw), -1, 1)
        if centers:  # as the streaming engine: the centre map is one more channel of the same sum
            both = predictor.predict_all(np.ascontiguousarray(batch))  # type: ignore[attr-defined]
            logits = np.concatenate([both["logits"], both["centers"]], axis=1)
        else:
            logits = predictor.predict(np.ascontiguousarray(batch))
        expected = (len(group), n_acc, *grid.tile)
        if logits.shape != expected:
            raise ModelError(f"model returned logits of shape {logits.shape}; expected {expected}")
        if not logits.flags.writeable:
            logits = logits.copy()
        for t, lg in zip(group, logits, strict=True):
            np.multiply(lg, _tile_weight(windows, t), out=lg)
            src, dst = [slice(None)], [slice(None)]
            for a, i in enumerate(t):
                lo = max(grid.starts[a][i], region[a].start)
                hi = min(grid.starts[a][i] + grid.tile[a], region[a].stop)
                src.append(slice(lo - grid.starts[a][i], hi - grid.starts[a][i]))
                dst.append(slice(lo - region[a].start, hi - region[a].start))
            acc[tuple(dst)] += lg[tuple(src)]
    labels = np.argmax(acc[:n_out], axis=0).astype(np.uint8)
    scale = _row_scale(grid, windows, region) if probabilities or centers else None
    probs = _probabilities(acc[:n_out], scale) if scale is not None and probabilities else None
    cmap = None
    if scale is not None and centers:
        cmap = np.empty(rshape, dtype=np.float32)
        for j in range(rshape[0]):
            cmap[j] = acc[n_out, j] * scale(j)
    return RegionResult(labels=labels, probabilities=probs, tiles=len(order), centers=cmap)


def _row_scale(grid: TileGrid, windows: list[list[np.ndarray]], region: Region) -> Callable[[int], np.ndarray]:
    """``scale(j)``: the inverse weight sum of row ``j`` of ``region``, as the streaming engine computes it."""
    wsum0 = grid.weight_sum_1d(0, windows[0])
    inplane = grid.weight_sum_1d(1, windows[1])
    if grid.ndim == 3:
        inplane = np.multiply.outer(inplane, grid.weight_sum_1d(2, windows[2]))
    inv = (1.0 / inplane[tuple(slice(0, s) for s in grid.shape[1:])]).astype(np.float32)[region[1:]]
    return lambda j: inv / np.float32(wsum0[region[0].start + j])


def _probabilities(acc: np.ndarray, scale: Callable[[int], np.ndarray]) -> np.ndarray:
    """Softmax of the weight-normalised sum, with the streaming engine's arithmetic row by row."""
    out = np.empty(acc.shape, dtype=np.float16)
    for j in range(acc.shape[1]):
        norm = acc[:, j] * scale(j)
        norm -= norm.max(axis=0, keepdims=True)
        np.exp(norm, out=norm)
        norm /= norm.sum(axis=0, keepdims=True)
        out[:, j] = norm
    return out


def segment_region(
    image: Any,
    predictor: Predictor,
    grid: TileGrid,
    region: Sequence[slice],
    *,
    stats: Any,
    stain_source: Any = None,
    options: Any = None,
    probabilities: bool = False,
    centers: bool = False,
) -> RegionResult:
    """:func:`predict_region` on a :class:`~pointseg_cli.io.images.LazyImage` (or canonical array).

    ``stats`` and ``stain_source`` are the whole image's (:func:`~pointseg_cli.infer.segment.input_statistics`);
    ``options`` a :class:`~pointseg_cli.infer.segment.SegmentOptions` (blend, edge trim, batch size,
    stain switch) and ``grid`` the whole image's grid (:func:`whole_grid`).
    """
    from pointseg_cli.infer.segment import SegmentOptions, _batch_for, _norm_of, _stain_of
    from pointseg_cli.preprocess.normalize import apply_normalization
    from pointseg_cli.preprocess.stain import apply_stains

    options = options or SegmentOptions()
    norm, ref = _norm_of(predictor), _stain_of(predictor, options)
    if ref is not None and stain_source is None:
        raise ConfigError("the model stain-normalises its input: pass the whole image's stain_source")
    lazy = hasattr(image, "read")
    has_c = (image.info.channels > 1) if lazy else (np.ndim(image) == grid.ndim + 1)

    def read(box: Region) -> np.ndarray:
        raw = np.array(image.read(box)) if lazy else np.asarray(image[box])
        return raw if has_c else raw[..., None]

    def normalize(raw: np.ndarray) -> np.ndarray:
        if ref is not None:
            raw = apply_stains(raw, stain_source, ref)
        return apply_normalization(raw, stats, channel_axis=-1, clip=norm.clip)

    return predict_region(read, normalize, predictor, grid, region, blend=options.blend,
                          edge_trim=options.edge_trim, batch_size=_batch_for(grid, predictor, options),
                          probabilities=probabilities, centers=centers)


def whole_grid(spatial: Sequence[int], predictor: Predictor, options: Any = None) -> TileGrid:
    """The tile grid that :func:`~pointseg_cli.infer.segment.segment_file` uses for an image of this shape."""
    from pointseg_cli.infer.segment import SegmentOptions, _grid_for

    return _grid_for(tuple(int(s) for s in spatial), predictor, options or SegmentOptions())
