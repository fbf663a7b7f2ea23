"""Provisional instance ids on disk, and the fallback for a component too large for memory.

:class:`ProvisionalIds` writes instance ids into the output array as windows finish (each voxel
belongs to one component, so windows never write the same voxel) and remembers each id's first
voxel and class, so the final pass can renumber ids in raster order of their first voxel.

:func:`segment_in_chunks` handles one connected component whose bounding box holds more voxels
than the memory budget. It is cut along the first axis into chunks; each chunk is segmented
with a halo of extra planes on both sides (markers are exact there: a peak only looks
``min_distance`` away), its core planes are kept, and an instance that continues from the
previous chunk takes that chunk's id when it overlaps it by more than half in the halo planes.
The watershed near chunk borders can differ from a whole-volume run, so this path is
approximate; the caller logs a warning naming the component.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from pointseg_cli.errors import InputError

log = logging.getLogger(__name__)


class ProvisionalIds:
    """Provisional ids with each id's first voxel and class, and their final numbering.

    Ids are handed out as components are segmented (:meth:`add` for objects whose first voxel is
    known, :meth:`put`/:meth:`write` for blocks written into ``out``). :meth:`finalize` numbers
    1, 2, ... every id whose first voxel lies before a flat index, in raster order of first
    voxels: called with increasing bounds once everything before them is segmented, it gives
    each object its final id as the planes are written.
    """

    def __init__(self, out: Any, shape: tuple[int, ...]) -> None:
        self.out, self.shape = out, tuple(shape)
        self.n = 0
        self.n_final = 0
        self._first = np.zeros(1024, np.int64)
        self._cls = np.zeros(1024, np.int64)
        self._final = np.zeros(1024, np.uint32)
        self._final_cls: list[np.ndarray] = []
        self._open = 1  # the smallest id that may still lack a final id

    def reserve(self, k: int) -> int:
        """Reserve ``k`` new ids; returns the offset to add to local ids 1..k."""
        off = self.n
        self.n += k
        if self.n >= 2**32 - 1:
            raise InputError(f"more than {2**32 - 2} instances do not fit a uint32 instance image")
        if self.n + 1 > self._first.size:
            grow = max(self.n + 1, 2 * self._first.size) - self._first.size
            self._first = np.concatenate([self._first, np.zeros(grow, np.int64)])
            self._cls = np.concatenate([self._cls, np.zeros(grow, np.int64)])
            self._final = np.concatenate([self._final, np.zeros(grow, np.uint32)])
        self._first[off + 1: self.n + 1] = np.iinfo(np.int64).max
        return off

    def add(self, first: np.ndarray, cls: np.ndarray) -> np.ndarray:
        """New ids for objects with known first voxels (flat indices) and classes; returns the ids."""
        k = int(np.size(first))
        off = self.reserve(k)
        self._first[off + 1: off + k + 1] = first
        self._cls[off + 1: off + k + 1] = cls
        return np.arange(off + 1, off + k + 1, dtype=np.uint32)

    def put(self, origin: tuple[int, ...], ids: np.ndarray, cls: np.ndarray) -> None:
        """Write non-zero global ``ids`` (a block at ``origin``), keeping other voxels."""
        sel = ids > 0
        if not sel.any():
            return
        region = tuple(slice(o, o + s) for o, s in zip(origin, ids.shape, strict=True))
        cur = np.array(self.out[region])
        cur[sel] = ids[sel]
        self.out[region] = cur
        idx = np.flatnonzero(sel)
        u, fi = np.unique(ids.ravel()[idx], return_index=True)
        local = np.unravel_index(idx[fi], ids.shape)
        pos = np.ravel_multi_index(tuple(c + o for c, o in zip(local, origin, strict=True)), self.shape)
        self._first[u] = np.minimum(self._first[u], pos)
        self._cls[u] = cls.ravel()[idx[fi]]

    def write(self, origin: tuple[int, ...], local: np.ndarray, k: int, cls: np.ndarray) -> None:
        """Write window-local ids 1..k as new ids."""
        if k:
            off = self.reserve(k)
            self.put(origin, np.where(local > 0, local.astype(np.int64) + off, 0), cls)

    def finalize(self, upto: int) -> np.ndarray:
        """Final ids for every id whose first voxel lies before flat index ``upto``.

        Returns the lookup table provisional -> final id (0 for ids not numbered yet). Ids that
        were reserved but never written (merged into another) get no final id.
        """
        start = self._open  # ids below it all have final ids (or were never written)
        first = self._first[start: self.n + 1]
        new = np.flatnonzero((first < upto) & (self._final[start: self.n + 1] == 0))
        if new.size:
            new = new[np.argsort(first[new], kind="stable")] + start
            self._final[new] = np.arange(self.n_final + 1, self.n_final + new.size + 1, dtype=np.uint32)
            self._final_cls.append(self._cls[new])
            self.n_final += int(new.size)
            still = np.flatnonzero(self._final[start: self.n + 1] == 0)
            self._open = start + int(still[0]) if still.size else self.n + 1
        return self._final[: self.n + 1]

    def final_classes(self) -> np.ndarray:
        """Class of each final id 1..n_final."""
        return np.concatenate(self._final_cls) if self._final_cls else np.zeros(0, np.int64)

    def renumbering(self) -> tuple[np.ndarray, np.ndarray]:
        """Lookup table provisional -> final id (raster order of first voxels) and final classes."""
        lut = self.finalize(np.iinfo(np.int64).max)
        return lut, self.final_classes()


def _link_orphans(prev: np.ndarray, cur: np.ndarray, orphans: np.ndarray) -> dict[int, int]:
    """Orphan ids of ``cur`` (no marker in their window) that continue an id of ``prev``: the
    previous id covering more than half of the orphan's voxels in these shared planes."""
    out: dict[int, int] = {}
    mine = np.isin(cur, orphans)
    both = mine & (prev > 0)
    if not both.any():
        return out
    c_ids, c_tot = np.unique(cur[mine], return_counts=True)
    total = dict(zip(c_ids.tolist(), c_tot.tolist(), strict=True))
    pairs, counts = np.unique(np.stack([cur[both], prev[both]]), axis=1, return_counts=True)
    for k, c, p in sorted(zip(counts.tolist(), *pairs.tolist(), strict=True), reverse=True):
        if c not in out and 2 * k > total[c]:
            out[c] = p
    return out


def _label_sparse(coords: np.ndarray, shape: tuple[int, ...], structure: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components (under ``structure``) of a sparse set of voxels ``coords`` (M, ndim)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if coords.shape[0] == 0:
        return np.zeros(0, np.int64), 0
    # Lean on memory (every voxel of a thin plateau can be a marker voxel: millions of them):
    # int32 indices where they fit, and each neighbour pair once (forward offsets only).
    idx_t = np.int32 if coords.shape[0] < 2**31 - 1 else np.int64
    flat = np.ravel_multi_index(coords.T, shape)
    order = np.argsort(flat).astype(idx_t)
    flat_sorted = flat[order]
    del flat
    rows, cols = [], []
    centre = np.array(structure.shape) // 2
    offsets = [o for o in np.argwhere(structure) - centre if tuple(o) > (0,) * len(shape)]
    for off in offsets:
        nb = coords + off
        inside = np.flatnonzero(np.all((nb >= 0) & (nb < np.asarray(shape)), axis=1))
        q = np.ravel_multi_index(nb[inside].T, shape)
        del nb
        pos = np.searchsorted(flat_sorted, q)
        hit = (pos < flat_sorted.size) & (flat_sorted[np.minimum(pos, flat_sorted.size - 1)] == q)
        rows.append(inside[hit].astype(idx_t))
        cols.append(order[pos[hit]])
        del q, pos, hit, inside
    del order, flat_sorted
    r = np.concatenate(rows) if rows else np.zeros(0, idx_t)
    c = np.concatenate(cols) if cols else np.zeros(0, idx_t)
    del rows, cols
    graph = coo_matrix((np.ones(r.size, np.int8), (r, c)), shape=(coords.shape[0], coords.shape[0]))
    del r, c
    n, lab = connected_components(graph, directed=False)
    return lab + 1, int(n)


def segment_in_chunks(
    read_window: Callable[[int, int], tuple[np.ndarray, np.ndarray | None]],
    prov: ProvisionalIds,
    *,
    lo: tuple[int, ...],
    hi: tuple[int, ...],
    number: int,
    cls_id: int,
    core: int,
    halo: int,
    config: Any,
    release: Callable[[], None] | None = None,
) -> None:
    """Segment component ``number`` of class ``cls_id`` (bounding box ``lo:hi``) chunk by chunk.

    ``read_window(a, b)`` returns (component numbers, centre values or None) of planes ``a:b``
    cropped in-plane to the box. Markers are found chunk by chunk (exact: the halo covers
    the peak search) and numbered over the whole component; each chunk's watershed is then
    seeded with every marker inside its halo'd window, so an object has the same id in every
    chunk. Voxels no marker in the window reaches form extra instances, joined to the previous
    chunk's instance they overlap by more than half. ``release()``, if given, is called after
    every window (to let memory-mapped inputs and outputs drop their pages).
    """
    from pointseg_cli.infer.watershed import find_peaks, mask_distance, neighbourhood, peak_radii, seeded_flood

    nd = len(lo)
    structure = neighbourhood(nd, config.connectivity)
    radii = peak_radii(config, nd)
    box = tuple(b - a for a, b in zip(lo, hi, strict=True))
    chunks = [(a, min(a + core, hi[0])) for a in range(lo[0], hi[0], core)]

    def window(a: int, b: int) -> tuple[int, np.ndarray, np.ndarray]:
        w0, w1 = max(a - halo, lo[0]), min(b + halo, hi[0])
        comp, values = read_window(w0, w1)
        mask = comp == number
        del comp
        vals = mask_distance(mask, config.spacing) if config.method == "distance" else values
        return w0, mask, vals

    found = []
    for a, b in chunks:
        w0, mask, vals = window(a, b)
        peaks = find_peaks(vals, mask, radii=radii, threshold=config.peak_threshold)
        coords = np.argwhere(peaks[a - w0: b - w0])
        coords[:, 0] += a - lo[0]
        found.append(coords)
        del mask, vals, peaks
        if release is not None:
            release()
    coords = np.concatenate(found)
    marker_ids, n_markers = _label_sparse(coords, box, structure)
    off = prov.reserve(n_markers)
    prev_ids: np.ndarray | None = None
    prev_start = 0
    for a, b in chunks:
        w0, mask, vals = window(a, b)
        w1 = w0 + mask.shape[0]
        markers = np.zeros(mask.shape, np.int32)
        here = (coords[:, 0] >= w0 - lo[0]) & (coords[:, 0] < w1 - lo[0])
        local = coords[here].copy()
        local[:, 0] -= w0 - lo[0]
        markers[tuple(local.T)] = marker_ids[here]
        ws = seeded_flood(vals, markers, mask, structure)
        del vals, markers
        ids = np.where(ws > 0, ws.astype(np.int64) + off, 0)
        lost = mask & (ws == 0)
        del ws
        if lost.any():
            orph, k = ndi_label(lost, structure)
            o = prov.reserve(k)
            ids[lost] = orph[lost] + o
            if prev_ids is not None:
                h0 = max(prev_start, w0)
                link = _link_orphans(prev_ids[h0 - prev_start:], ids[h0 - w0: a - w0], np.arange(o + 1, o + k + 1))
                for c, p in link.items():
                    ids[ids == c] = p
        core_ids = ids[a - w0: b - w0]
        prov.put((a, *lo[1:]), core_ids, np.where(core_ids > 0, cls_id, 0))
        keep = min(halo, core_ids.shape[0])
        prev_ids, prev_start = core_ids[-keep:].copy(), b - keep
        del mask, ids, core_ids, lost
        if release is not None:
            release()


def ndi_label(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage as ndi

    lab, k = ndi.label(mask, structure=structure)
    return lab.astype(np.int64), int(k)
