"""The streaming sliding-window engine: slabs along the first spatial axis, blended logits, rows out.

The first spatial axis (Z for volumes, Y for 2D images) is processed in *slabs*: one slab is one
tile-row of the grid along that axis. Five stages run at once, joined by bounded queues
(:mod:`pointseg_cli.infer.pipeline`): a reader reads the next slab (raw pixels); a preparer cuts
the slab into batches of tiles, normalises them and casts them to the model's input type; the
calling thread runs the model on one batch after the other; a blender adds the blend-weighted
logits to a ring buffer one tile deep and, as soon as rows can receive no more contributions,
turns them into class ids (and optionally probabilities), one plane at a time; a writer hands
the finished rows to the sink. onnxruntime and numpy release the GIL, so reading, normalising,
blending and writing overlap the model's compute. Peak memory depends on the tile depth and the
in-plane size, never on the depth.

This module knows nothing about files: a ``read_slab`` callable supplies pixels and a ``sink``
callable consumes finished rows, so the same engine serves whole files, in-memory arrays and
Dask blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pointseg_cli.errors import ModelError
from pointseg_cli.infer import pipeline
from pointseg_cli.infer.device_blend import DeviceBlender, torch_device_for
from pointseg_cli.infer.pipeline import DONE, STOPPED
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.tiling import TileGrid, pad_to
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

#: ``read_slab(start, stop)`` -> raw pixels ``(stop - start, *spatial[1:], C)`` (unpadded, any dtype).
SlabReader = Callable[[int, int], np.ndarray]
#: ``normalize(raw)`` -> float32 of the same shape (channel last).
Normalizer = Callable[[np.ndarray], np.ndarray]

#: Batches of tiles prepared ahead of the model, and model outputs waiting for the blender.
QUEUE_DEPTH = 2


@dataclass(frozen=True)
class Rows:
    """Finished rows ``start : start + n`` along the first spatial axis, cropped to the image.

    Attributes
    ----------
    start : int
        First row.
    labels : numpy.ndarray
        Class ids ``(n, *spatial[1:])`` uint8.
    probabilities : numpy.ndarray or None
        Softmax ``(K+1, n, *spatial[1:])`` float16 (when requested).
    logits : numpy.ndarray or None
        Blended logits ``(K+1, n, *spatial[1:])`` float32, divided by the weight sum (when requested).
    centers : numpy.ndarray or None
        Blended object-centre map ``(n, *spatial[1:])`` float32 (when requested; the model's
        ``centers`` output, blended with the same tiles and weights as the logits).
    """

    start: int
    labels: np.ndarray
    probabilities: np.ndarray | None = None
    logits: np.ndarray | None = None
    centers: np.ndarray | None = None

    @property
    def stop(self) -> int:
        return self.start + self.labels.shape[0]


RowSink = Callable[[Rows], None]


class _Blender:
    """Ring buffer of blend-weighted logits, one tile deep along axis 0."""

    def __init__(self, grid: TileGrid, n_out: int, blend: str, edge_trim: int | None, *, ring: bool = True) -> None:
        nd = grid.ndim
        self.grid = grid
        self.t0 = grid.tile[0]
        self.windows = [grid.axis_windows(a, blend, edge_trim=edge_trim) for a in range(nd)]
        self.wsum0 = grid.weight_sum_1d(0, self.windows[0])
        inplane = grid.weight_sum_1d(1, self.windows[1])
        if nd == 3:
            inplane = np.multiply.outer(inplane, grid.weight_sum_1d(2, self.windows[2]))
        self.inv_inplane = (1.0 / inplane[tuple(slice(0, s) for s in grid.shape[1:])]).astype(np.float32)
        # ring=False: only the windows and weights are wanted (the ring lives on a device)
        self.acc = np.zeros((n_out, self.t0, *grid.padded_shape[1:]) if ring else (0,), dtype=np.float32)
        self._weights: dict[tuple[int, ...], np.ndarray] = {}

    def tile_weight(self, index: tuple[int, ...]) -> np.ndarray:
        # Windows differ only for the first and last tile of an axis: cache by that.
        starts = self.grid.starts
        key = tuple(0 if i == 0 else (2 if i == len(starts[a]) - 1 else 1) for a, i in enumerate(index))
        w = self._weights.get(key)
        if w is None:
            w = np.ones((), dtype=np.float64)
            for a, i in enumerate(index):
                w = np.multiply.outer(w, self.windows[a][i])
            w = self._weights[key] = w.astype(np.float32)
        return w

    def add(self, start0: int, inner: tuple[slice, ...], weighted: np.ndarray) -> None:
        """Add ``weighted`` logits ``(K+1, t0, *tile[1:])`` of the tile at rows ``start0 :``."""
        p = start0 % self.t0
        head = self.t0 - p
        self.acc[(slice(None), slice(p, self.t0), *inner)] += weighted[:, :head]
        if p:
            self.acc[(slice(None), slice(0, p), *inner)] += weighted[:, head:]

    def finish(self, lo: int, hi: int, outputs: tuple[str, ...], n_out: int) -> Rows:
        """Turn rows ``lo:hi`` (all complete) into outputs, plane by plane, and clear them.

        Channels ``0 .. n_out - 1`` of the accumulator are logits; one more, when present, is the
        centre map.
        """
        crop = tuple(slice(0, s) for s in self.grid.shape[1:])
        n = hi - lo
        labels = np.empty((n, *self.grid.shape[1:]), dtype=np.uint8)
        want_p = "probabilities" in outputs
        want_l = "logits" in outputs
        want_c = self.acc.shape[0] > n_out
        probs = np.empty((n_out, n, *self.grid.shape[1:]), np.float16) if want_p else None
        logits = np.empty((n_out, n, *self.grid.shape[1:]), np.float32) if want_l else None
        centers = np.empty((n, *self.grid.shape[1:]), np.float32) if want_c else None
        for j in range(n):
            r = (lo + j) % self.t0
            plane = self.acc[(slice(0, n_out), r, *crop)]
            # The weight sum is positive and the same for every class: argmax needs no division.
            labels[j] = np.argmax(plane, axis=0)
            if centers is not None:
                centers[j] = self.acc[(n_out, r, *crop)] * (self.inv_inplane / np.float32(self.wsum0[lo + j]))
            if want_p or want_l:
                norm = plane * (self.inv_inplane / np.float32(self.wsum0[lo + j]))
                if want_l:
                    logits[:, j] = norm
                if want_p:
                    norm -= norm.max(axis=0, keepdims=True)
                    np.exp(norm, out=norm)
                    norm /= norm.sum(axis=0, keepdims=True)
                    probs[:, j] = norm
            self.acc[:, r] = 0.0
        return Rows(lo, labels, probs, logits, centers)


def run_stream(
    read_slab: SlabReader,
    normalize: Normalizer,
    predictor: Predictor,
    grid: TileGrid,
    sink: RowSink,
    *,
    blend: str = "gaussian",
    edge_trim: int | None = None,
    batch_size: int = 4,
    outputs: tuple[str, ...] = ("labels",),
    prefetch: int = 1,
    progress: ProgressCallback | None = None,
    task: str = "tiles",
    blend_on: str | None = None,
) -> int:
    """Run ``predictor`` over ``grid`` and feed finished rows to ``sink`` in order.

    Parameters
    ----------
    read_slab : callable
        ``read_slab(start, stop)`` returns raw pixels ``(n, *shape[1:], C)`` for rows ``start:stop``
        of axis 0 (``stop <= grid.shape[0]``); called from a reader thread.
    normalize : callable
        Raw channel-last pixels to normalised float32 (applied per batch of tiles, in a
        preparer thread).
    predictor : Predictor
        Maps ``(N, C, *tile)`` to ``(N, K+1, *tile)`` logits; called from the calling thread.
        Batches come in the predictor's ``input_dtype`` when it has one (float32 otherwise).
    grid : TileGrid
        The tile grid over the image's spatial shape.
    sink : callable
        Receives :class:`Rows` covering ``0 .. shape[0]`` in order; called from a writer thread.
    blend : {"gaussian", "linear", "constant"}
        Blend window.
    edge_trim : int, optional
        See :meth:`TileGrid.axis_windows` (default: a quarter of the overlap).
    batch_size : int
        Tiles per ``predictor.predict`` call.
    outputs : tuple of str
        Which of ``labels`` (always), ``probabilities``, ``logits``, ``centers`` the rows carry.
        ``centers`` needs a model with a centre output (``predict_all``); that output is blended
        as one more channel of the logits' accumulation.
    prefetch : int
        Slabs read ahead of the preparer.
    progress : callable, optional
        ``progress(task, done, total)`` after each batch of tiles.
    task : str
        The task name given to ``progress``.
    blend_on : str, optional
        Where the tile outputs are blended: ``"host"`` (numpy), or a torch device (``"cuda"``;
        ``"cpu"`` runs the device code on the host) for a predictor with ``predict_device``, whose
        outputs then never leave that device until rows are finished. Default: the GPU when the
        predictor runs on one (:func:`~pointseg_cli.infer.device_blend.torch_device_for`), the host
        otherwise.

    Returns
    -------
    int
        Number of tiles run.
    """
    t0 = grid.tile[0]
    n_out = predictor.metadata.n_outputs
    want_c = "centers" in outputs
    if want_c and not getattr(predictor.metadata, "has_centers", False):
        raise ModelError("the model has no centre output")
    dev = torch_device_for(predictor) if blend_on is None else (None if blend_on == "host" else blend_on)
    if dev is not None and not hasattr(predictor, "predict_device"):
        raise ModelError(f"blending on {dev} needs a predictor that can leave its outputs there")
    plan = _Blender(grid, n_out + int(want_c), blend, edge_trim, ring=dev is None)
    blender = plan if dev is None else DeviceBlender(plan, n_out + int(want_c), dev)
    log.debug("blending tile outputs on %s", dev or "the host")
    inner = grid.inner_tiles()
    starts0 = grid.starts[0]
    in_dtype = np.dtype(getattr(predictor, "input_dtype", np.float32))

    stop = threading.Event()
    slabs: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    batches: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    blends: queue.Queue = queue.Queue(maxsize=QUEUE_DEPTH)
    rows_q: queue.Queue = queue.Queue(maxsize=1)

    def reader() -> None:
        for s in starts0:
            data = pad_to(read_slab(s, min(s + t0, grid.shape[0])), (t0, *grid.padded_shape[1:]))
            if not pipeline.put(slabs, (s, data), stop):
                return
        pipeline.put(slabs, DONE, stop)

    def preparer() -> None:
        while (item := pipeline.get(slabs, stop)) is not STOPPED:
            if item is DONE:
                pipeline.put(batches, DONE, stop)
                return
            s, slab = item
            for b in range(0, len(inner), batch_size):
                group = inner[b : b + batch_size]
                raw = np.stack([slab[(slice(None), *sl)] for _, sl in group])  # (N, t0, *tile[1:], C)
                x = np.ascontiguousarray(np.moveaxis(normalize(raw), -1, 1), dtype=in_dtype)
                if not pipeline.put(batches, (s, group, x), stop):
                    return
            del item, slab

    emitted = 0

    def emit(upto: int) -> bool:
        nonlocal emitted
        hi = min(upto, grid.shape[0])
        ok = hi <= emitted or pipeline.put(rows_q, blender.finish(emitted, hi, outputs, n_out), stop)
        emitted = max(emitted, upto)
        return ok

    def blending() -> None:
        while (item := pipeline.get(blends, stop)) is not STOPPED:
            if item is DONE:
                if emit(grid.shape[0]):
                    pipeline.put(rows_q, DONE, stop)
                return
            s, group, logits = item
            if not emit(s):  # rows before this slab receive no more tiles
                return
            i0 = starts0.index(s)
            if dev is not None:
                blender.add_tiles(s, i0, group, logits)
                continue
            for (idx, sl), lg in zip(group, logits, strict=True):
                np.multiply(lg, blender.tile_weight((i0, *idx)), out=lg)
                blender.add(s, sl, lg)

    def writer() -> None:
        while (item := pipeline.get(rows_q, stop)) is not STOPPED and item is not DONE:
            sink(item)

    stages = [pipeline.Stage(fn, f"pointseg-{fn.__name__}") for fn in (reader, preparer, blending, writer)]

    def check() -> None:
        pipeline.check_all(stages)

    done_tiles = 0
    for stage in stages:
        stage.start()
    try:
        while (item := pipeline.get(batches, stop, check)) is not DONE and item is not STOPPED:
            s, group, x = item
            logits = _run_model(predictor, x, grid, n_out, want_c, on_device=dev is not None)
            del x
            pipeline.put(blends, (s, group, logits), stop, check)
            done_tiles += len(group)
            if progress is not None:
                progress(task, done_tiles, grid.n_tiles)
        pipeline.put(blends, DONE, stop, check)
        pipeline.join(stages, check)
    finally:
        stop.set()
        for stage in stages:
            stage.join(timeout=5)
    return done_tiles


def _run_model(predictor: Predictor, x: np.ndarray, grid: TileGrid, n_out: int, want_c: bool, *,
               on_device: bool = False) -> Any:
    """Writable float32 logits ``(N, n_out [+ 1], *tile)`` of one batch; the centre map as the last channel.

    ``on_device``: a torch tensor on the predictor's device instead (any float type).
    """
    n = x.shape[0]
    expected = (n, n_out + int(want_c), *grid.tile)
    if on_device:
        out = predictor.predict_device(x, centers=want_c)  # type: ignore[attr-defined]
        if tuple(out.shape) != expected:
            raise ModelError(f"model returned outputs of shape {tuple(out.shape)}; expected {expected}")
        return out
    if want_c:
        both = predictor.predict_all(x)  # type: ignore[attr-defined]
        logits, centers = both["logits"], both["centers"]
        if centers.shape != (n, 1, *grid.tile):
            raise ModelError(f"model returned centres of shape {centers.shape}; expected {(n, 1, *grid.tile)}")
        logits = np.concatenate([logits, centers], axis=1)
    else:
        logits = predictor.predict(x)
    if logits.shape != expected:
        raise ModelError(f"model returned logits of shape {logits.shape}; expected {expected}")
    if not logits.flags.writeable or logits.dtype != np.float32:
        logits = np.array(logits, dtype=np.float32)
    return logits
