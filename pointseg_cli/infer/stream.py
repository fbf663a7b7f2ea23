"""The streaming sliding-window engine: slabs along the first spatial axis, blended logits, rows out.

The first spatial axis (Z for volumes, Y for 2D images) is processed in *slabs*: one slab is one
tile-row of the grid along that axis. A reader thread reads the next slab (raw pixels) while the
calling thread normalises tiles, runs the model and accumulates blend-weighted logits in a ring
buffer one tile deep; as soon as rows can receive no more contributions they are turned into
class ids (and optionally probabilities), one plane at a time, and handed to a writer thread.
Peak memory therefore depends on the tile depth and the in-plane size, never on the depth.

This module knows nothing about files: a ``read_slab`` callable supplies pixels and a ``sink``
callable consumes finished rows, so the same engine serves whole files, in-memory arrays and
(later) Dask blocks.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import ModelError
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.tiling import TileGrid, pad_to
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

#: ``read_slab(start, stop)`` -> raw pixels ``(stop - start, *spatial[1:], C)`` (unpadded, any dtype).
SlabReader = Callable[[int, int], np.ndarray]
#: ``normalize(raw)`` -> float32 of the same shape (channel last).
Normalizer = Callable[[np.ndarray], np.ndarray]


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

_DONE = object()


class _Worker(threading.Thread):
    """A daemon thread whose exception is kept for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread and re-raised there
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def _put(q: queue.Queue, item: object, stop: threading.Event, worker: _Worker | None = None) -> bool:
    while not stop.is_set():
        if worker is not None:
            worker.check()
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


class _Blender:
    """Ring buffer of blend-weighted logits, one tile deep along axis 0."""

    def __init__(self, grid: TileGrid, n_out: int, blend: str, edge_trim: int | None) -> None:
        nd = grid.ndim
        self.grid = grid
        self.t0 = grid.tile[0]
        self.windows = [grid.axis_windows(a, blend, edge_trim=edge_trim) for a in range(nd)]
        self.wsum0 = grid.weight_sum_1d(0, self.windows[0])
        inplane = grid.weight_sum_1d(1, self.windows[1])
        if nd == 3:
            inplane = np.multiply.outer(inplane, grid.weight_sum_1d(2, self.windows[2]))
        self.inv_inplane = (1.0 / inplane[tuple(slice(0, s) for s in grid.shape[1:])]).astype(np.float32)
        self.acc = np.zeros((n_out, self.t0, *grid.padded_shape[1:]), dtype=np.float32)
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
) -> int:
    """Run ``predictor`` over ``grid`` and feed finished rows to ``sink`` in order.

    Parameters
    ----------
    read_slab : callable
        ``read_slab(start, stop)`` returns raw pixels ``(n, *shape[1:], C)`` for rows ``start:stop``
        of axis 0 (``stop <= grid.shape[0]``); called from a reader thread.
    normalize : callable
        Raw channel-last pixels to normalised float32 (applied per batch of tiles).
    predictor : Predictor
        Maps ``(N, C, *tile)`` to ``(N, K+1, *tile)`` logits.
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
        Slabs read ahead of the compute.

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
    blender = _Blender(grid, n_out + int(want_c), blend, edge_trim)
    inner = grid.inner_tiles()
    starts0 = grid.starts[0]
    total_tiles = grid.n_tiles

    stop = threading.Event()
    slabs: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    rows_q: queue.Queue = queue.Queue(maxsize=1)

    def reader() -> None:
        for s in starts0:
            if stop.is_set():
                return
            data = read_slab(s, min(s + t0, grid.shape[0]))
            data = pad_to(data, (t0, *grid.padded_shape[1:]))
            if not _put(slabs, (s, data), stop):
                return
        _put(slabs, _DONE, stop)

    def writer() -> None:
        while True:
            item = rows_q.get()
            if item is _DONE or stop.is_set():
                return
            sink(item)

    r_thread = _Worker(reader, "pointseg-reader")
    w_thread = _Worker(writer, "pointseg-writer")
    done_tiles = 0
    emitted = 0

    def emit(upto: int) -> None:
        nonlocal emitted
        hi = min(upto, grid.shape[0])
        if hi > emitted:
            _put(rows_q, blender.finish(emitted, hi, outputs, n_out), stop, w_thread)
        emitted = max(emitted, upto)

    r_thread.start()
    w_thread.start()
    try:
        while True:
            try:
                item = slabs.get(timeout=0.1)
            except queue.Empty:
                r_thread.check()
                w_thread.check()
                continue
            if item is _DONE:
                break
            s, slab = item
            i0 = starts0.index(s)
            emit(s)  # rows before this slab receive no more tiles
            for b in range(0, len(inner), batch_size):
                group = inner[b : b + batch_size]
                raw = np.stack([slab[(slice(None), *sl)] for _, sl in group])  # (N, t0, *tile[1:], C)
                batch = np.moveaxis(normalize(raw), -1, 1)
                if want_c:
                    both = predictor.predict_all(np.ascontiguousarray(batch))  # type: ignore[attr-defined]
                    logits, centers = both["logits"], both["centers"]
                    if centers.shape != (len(group), 1, *grid.tile):
                        raise ModelError(f"model returned centres of shape {centers.shape}; "
                                         f"expected {(len(group), 1, *grid.tile)}")
                    logits = np.concatenate([logits, centers], axis=1)
                else:
                    logits = predictor.predict(np.ascontiguousarray(batch))
                expected = (len(group), n_out + int(want_c), *grid.tile)
                if logits.shape != expected:
                    raise ModelError(f"model returned logits of shape {logits.shape}; expected {expected}")
                if not logits.flags.writeable:
                    logits = logits.copy()
                for (idx, sl), lg in zip(group, logits, strict=True):
                    np.multiply(lg, blender.tile_weight((i0, *idx)), out=lg)
                    blender.add(s, sl, lg)
                done_tiles += len(group)
                if progress is not None:
                    progress(task, done_tiles, total_tiles)
            del slab
        emit(grid.shape[0])
        _put(rows_q, _DONE, stop, w_thread)
        w_thread.join()
        w_thread.check()
        r_thread.check()
    finally:
        stop.set()
        try:  # unblock a writer waiting on an empty queue so that it sees ``stop``
            rows_q.put_nowait(_DONE)
        except queue.Full:
            pass
        r_thread.join(timeout=5)
        w_thread.join(timeout=5)
    return done_tiles
