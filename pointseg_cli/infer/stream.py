"""The streaming sliding-window engine: slabs along the first spatial axis, blended logits, rows out.

The first spatial axis (Z for volumes, Y for 2D images) is processed in *slabs*: one slab is one
tile-row of the grid along that axis. A reader thread reads and normalises the next slabs while the
calling thread runs the model on the tiles of the current one; accumulated, blend-weighted logits
are kept only for one tile's depth, and as soon as rows can receive no more contributions they are
handed to a writer thread. Peak memory therefore depends on the tile depth and the in-plane size,
never on the depth of the volume.

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

from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.tiling import TileGrid, pad_to
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

#: ``read_slab(start, stop)`` -> normalised float32 ``(stop - start, *spatial[1:], C)`` (unpadded).
SlabReader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class Rows:
    """Finished rows along the first spatial axis.

    Attributes
    ----------
    start : int
        Index of the first row along axis 0 of the image.
    logits : numpy.ndarray
        Blended logits ``(K+1, n, *spatial[1:])`` float32, already divided by the blend weight sum.
    """

    start: int
    logits: np.ndarray

    @property
    def stop(self) -> int:
        return self.start + self.logits.shape[1]

    def labels(self) -> np.ndarray:
        """Class ids ``(n, *spatial[1:])`` uint8 (argmax over classes)."""
        return np.argmax(self.logits, axis=0).astype(np.uint8)

    def probabilities(self) -> np.ndarray:
        """Softmax over classes, ``(K+1, n, *spatial[1:])`` float32."""
        z = self.logits - self.logits.max(axis=0, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=0, keepdims=True)
        return z


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


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def run_stream(
    read_slab: SlabReader,
    predictor: Predictor,
    grid: TileGrid,
    sink: RowSink,
    *,
    blend: str = "gaussian",
    edge_trim: int | None = None,
    batch_size: int = 4,
    prefetch: int = 2,
    progress: ProgressCallback | None = None,
    task: str = "tiles",
) -> int:
    """Run ``predictor`` over ``grid`` and feed finished rows to ``sink`` in order.

    Parameters
    ----------
    read_slab : callable
        ``read_slab(start, stop)`` returns normalised float32 pixels ``(n, *shape[1:], C)`` for rows
        ``start:stop`` of axis 0 (``stop <= grid.shape[0]``); called from a reader thread.
    predictor : Predictor
        Maps ``(N, C, *tile)`` to ``(N, K+1, *tile)`` logits.
    grid : TileGrid
        The tile grid over the image's spatial shape.
    sink : callable
        Receives :class:`Rows` covering ``0 .. shape[0]`` in order, each cropped to ``grid.shape``;
        called from a writer thread.
    blend : {"gaussian", "linear", "constant"}
        Blend window.
    edge_trim : int, optional
        See :meth:`TileGrid.axis_windows` (default: a quarter of the overlap).
    batch_size : int
        Tiles per ``predictor.predict`` call.
    prefetch : int
        Slabs read ahead of the compute.

    Returns
    -------
    int
        Number of tiles run.
    """
    nd = grid.ndim
    t0 = grid.tile[0]
    windows = [grid.axis_windows(a, blend, edge_trim=edge_trim) for a in range(nd)]
    wsums = [grid.weight_sum_1d(a, windows[a]) for a in range(nd)]
    weight_cache: dict[tuple[int, ...], np.ndarray] = {}

    def tile_weight(index: tuple[int, ...]) -> np.ndarray:
        # Windows differ only for the first and last tile of an axis: cache by that.
        key = tuple(0 if i == 0 else (2 if i == len(grid.starts[a]) - 1 else 1) for a, i in enumerate(index))
        w = weight_cache.get(key)
        if w is None:
            w = np.ones((), dtype=np.float64)
            for a, i in enumerate(index):
                w = np.multiply.outer(w, windows[a][i])
            w = weight_cache[key] = w.astype(np.float32)
        return w
    inv_inplane = 1.0 / np.multiply.outer(wsums[1], wsums[2]) if nd == 3 else 1.0 / wsums[1]
    inv_inplane = inv_inplane[tuple(slice(0, s) for s in grid.shape[1:])].astype(np.float32)
    inner = grid.inner_tiles()
    starts0 = grid.starts[0]
    total_tiles = grid.n_tiles
    n_out = predictor.metadata.n_outputs

    stop = threading.Event()
    slabs: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    rows_q: queue.Queue = queue.Queue(maxsize=2)

    def reader() -> None:
        for s in starts0:
            if stop.is_set():
                return
            hi = min(s + t0, grid.shape[0])
            data = read_slab(s, hi)
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

    def check(worker: _Worker) -> None:
        if worker.error is not None:
            raise worker.error

    acc = np.zeros((n_out, t0, *grid.padded_shape[1:]), dtype=np.float32)
    buf_lo = 0
    done_tiles = 0
    crop = (slice(None), slice(None), *(slice(0, s) for s in grid.shape[1:]))

    def emit(upto: int) -> None:
        nonlocal buf_lo
        k = upto - buf_lo
        if k <= 0:
            return
        n = min(k, grid.shape[0] - buf_lo)
        if n > 0:
            rows = acc[:, :n][crop].copy()
            rows *= inv_inplane[None, None]
            rows *= (1.0 / wsums[0][buf_lo : buf_lo + n]).astype(np.float32).reshape((1, n) + (1,) * (nd - 1))
            while not stop.is_set():
                check(w_thread)
                try:
                    rows_q.put(Rows(buf_lo, rows), timeout=0.1)
                    break
                except queue.Full:
                    continue
        acc[:, : t0 - k] = acc[:, k:t0]
        acc[:, t0 - k :] = 0.0
        buf_lo = upto

    r_thread = _Worker(reader, "pointseg-reader")
    w_thread = _Worker(writer, "pointseg-writer")
    r_thread.start()
    w_thread.start()
    try:
        while True:
            try:
                item = slabs.get(timeout=0.1)
            except queue.Empty:
                check(r_thread)
                check(w_thread)
                continue
            if item is _DONE:
                break
            s, slab = item
            i0 = starts0.index(s)
            emit(s)
            chans_first = np.moveaxis(slab, -1, 0)  # (C, t0, *padded[1:])
            for b in range(0, len(inner), batch_size):
                group = inner[b : b + batch_size]
                batch = np.stack([chans_first[(slice(None), slice(None), *sl)] for _, sl in group])
                logits = predictor.predict(batch)
                expected = (len(group), n_out, *grid.tile)
                if logits.shape != expected:
                    from pointseg_cli.errors import ModelError

                    raise ModelError(f"model returned logits of shape {logits.shape}; expected {expected}")
                for (idx, sl), lg in zip(group, logits, strict=True):
                    acc[(slice(None), slice(None), *sl)] += lg * tile_weight((i0, *idx))
                done_tiles += len(group)
                if progress is not None:
                    progress(task, done_tiles, total_tiles)
            check(w_thread)
        emit(grid.shape[0])
        rows_q.put(_DONE)
        w_thread.join()
        check(w_thread)
        check(r_thread)
    finally:
        stop.set()
        # Unblock a writer waiting on an empty queue so that it can see ``stop``.
        try:
            rows_q.put_nowait(_DONE)
        except queue.Full:
            pass
        r_thread.join(timeout=5)
        w_thread.join(timeout=5)
    return done_tiles
