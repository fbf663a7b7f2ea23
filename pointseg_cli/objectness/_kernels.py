"""Numba kernels for seeded region growing on flat, padded arrays.

Nothing here validates its inputs; :mod:`pointseg_cli.objectness.grow` does that, pads and
ravels. Shared preconditions of the growing kernels:

- ``image`` is float32 ``(P, C)``: the padded image raveled over its spatial axes, channels last.
- ``regions`` is int32 ``(P,)``: ``-1`` on the one-voxel sentinel border, ``0`` everywhere else.
  Because every border voxel is ``-1``, neighbour look-ups ``p + offsets[k]`` from an interior
  voxel never leave the array and need no bounds tests.
- ``dist`` is float64 ``(P,)``, filled with ``inf``.
- ``offsets`` (int64) are the flat neighbour displacements in visiting order; ``weights``
  (float64) multiply the intensity cost of a step along the matching offset.
- ``seeds`` (int64) are distinct interior flat indices; ``seed_labels`` (int32) their region ids.
- ``cost_mode`` is :data:`COST_PARENT` (a step ``p -> q`` costs ``sum_c (I[q,c] - I[p,c])**2``) or
  :data:`COST_SEED` (it costs ``sum_c (I[q,c] - refs[r-1,c])**2`` where ``r`` is the region id of
  ``p``); ``refs`` is float64 ``(R, C)`` with a row per region id ``1..R`` (ignored, any shape
  ``(>=0, C)``, for :data:`COST_PARENT`). Both are times the offset's weight.

The priority queue is a binary min-heap held in three parallel arrays (key, insertion counter,
node) and ordered on ``(key, counter)`` so that ties pop first-in first-out. It holds only the
growing front, so it starts small and doubles when full. (A 4-ary heap and a packed 16-byte
entry layout were tried and measured no faster here.)
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: ``cost_mode`` values of the growing kernels.
COST_PARENT = 0
COST_SEED = 1


@njit(cache=True, inline="always")
def _less(k1: float, c1: int, k2: float, c2: int) -> bool:
    return k1 < k2 or (k1 == k2 and c1 < c2)


@njit(cache=True)
def _push(hkey, hcnt, hnode, size, key, cnt, node):  # noqa: ANN001, ANN202
    """Insert ``(key, cnt, node)`` at position ``size`` and sift it up. Capacity must suffice."""
    pos = size
    while pos > 0:
        parent = (pos - 1) >> 1
        if _less(hkey[parent], hcnt[parent], key, cnt):
            break
        hkey[pos] = hkey[parent]
        hcnt[pos] = hcnt[parent]
        hnode[pos] = hnode[parent]
        pos = parent
    hkey[pos] = key
    hcnt[pos] = cnt
    hnode[pos] = node


@njit(cache=True)
def _pop_root(hkey, hcnt, hnode, size):  # noqa: ANN001, ANN202
    """Remove the root of a heap holding ``size`` entries (the caller has read it first)."""
    last = size - 1
    key = hkey[last]
    cnt = hcnt[last]
    node = hnode[last]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= last:
            break
        right = child + 1
        if right < last and _less(hkey[right], hcnt[right], hkey[child], hcnt[child]):
            child = right
        if _less(key, cnt, hkey[child], hcnt[child]):
            break
        hkey[pos] = hkey[child]
        hcnt[pos] = hcnt[child]
        hnode[pos] = hnode[child]
        pos = child
    if last > 0:
        hkey[pos] = key
        hcnt[pos] = cnt
        hnode[pos] = node


@njit(cache=True)
def _grow_heap(hkey, hcnt, hnode, size):  # noqa: ANN001, ANN202
    """Copies of the heap arrays with twice the capacity (same dtypes)."""
    cap = 2 * hkey.shape[0]
    nk = np.empty(cap, hkey.dtype)
    nc = np.empty(cap, hcnt.dtype)
    nn = np.empty(cap, hnode.dtype)
    nk[:size] = hkey[:size]
    nc[:size] = hcnt[:size]
    nn[:size] = hnode[:size]
    return nk, nc, nn


@njit(cache=True, inline="always")
def _step_cost(image, refs, cost_mode, p, q, lab, weight):  # noqa: ANN001, ANN202
    c = 0.0
    if cost_mode == COST_SEED:
        r = lab - 1
        for ch in range(image.shape[1]):
            diff = np.float64(image[q, ch]) - refs[r, ch]
            c += diff * diff
    else:
        for ch in range(image.shape[1]):
            diff = np.float64(image[q, ch]) - np.float64(image[p, ch])
            c += diff * diff
    return weight * c


@njit(cache=True)
def _push_seeds(regions, dist, seeds, seed_labels, hkey, hcnt, hnode):  # noqa: ANN001, ANN202
    """Label the seeds, set their distance to 0 and push them in order; returns the heap size."""
    for i in range(seeds.shape[0]):
        s = seeds[i]
        regions[s] = seed_labels[i]
        dist[s] = 0.0
        _push(hkey, hcnt, hnode, i, 0.0, i, s)
    return seeds.shape[0]


@njit(cache=True)
def grow_paper(  # noqa: ANN201
    image, regions, dist, offsets, weights, seeds, seed_labels, refs, cost_mode, hkey, hcnt, hnode  # noqa: ANN001
):
    """Region growing as in Li, Dey et al.: a voxel is labelled, for good, when first pushed.

    ``hkey`` (float64), ``hcnt`` and ``hnode`` (int32 or int64, wide enough for the number of
    voxels) are the initial heap storage (at least one entry per seed); the heap doubles when
    full. Fills ``regions`` and ``dist`` in place and returns the number of voxels popped.
    """
    size = _push_seeds(regions, dist, seeds, seed_labels, hkey, hcnt, hnode)
    counter = size
    popped = 0
    n_off = offsets.shape[0]
    while size > 0:
        p = hnode[0]
        dp = hkey[0]
        _pop_root(hkey, hcnt, hnode, size)
        size -= 1
        popped += 1
        lab = regions[p]
        for k in range(n_off):
            q = p + offsets[k]
            if regions[q] != 0:
                continue
            dq = dp + _step_cost(image, refs, cost_mode, p, q, lab, weights[k])
            regions[q] = lab
            dist[q] = dq
            if size == hkey.shape[0]:
                hkey, hcnt, hnode = _grow_heap(hkey, hcnt, hnode, size)
            _push(hkey, hcnt, hnode, size, dq, counter, q)
            size += 1
            counter += 1
    return popped


@njit(cache=True)
def grow_geodesic(  # noqa: ANN201
    image, regions, dist, offsets, weights, seeds, seed_labels, refs, cost_mode, hkey, hcnt, hnode  # noqa: ANN001
):
    """Exact multi-source Dijkstra with lazy deletion.

    A voxel takes the region of the neighbour that gives it a strictly shorter distance, so it
    can be relabelled until it is popped; stale heap entries are skipped when popped. Heap
    storage as for :func:`grow_paper` (``hcnt`` int64: a voxel can be pushed several times).
    Returns the number of settled voxels.
    """
    size = _push_seeds(regions, dist, seeds, seed_labels, hkey, hcnt, hnode)
    counter = size
    settled = 0
    n_off = offsets.shape[0]
    while size > 0:
        p = hnode[0]
        dp = hkey[0]
        _pop_root(hkey, hcnt, hnode, size)
        size -= 1
        if dp > dist[p]:
            continue
        settled += 1
        lab = regions[p]
        for k in range(n_off):
            q = p + offsets[k]
            if regions[q] < 0:
                continue
            dq = dp + _step_cost(image, refs, cost_mode, p, q, lab, weights[k])
            if dq < dist[q]:
                dist[q] = dq
                regions[q] = lab
                if size == hkey.shape[0]:
                    hkey, hcnt, hnode = _grow_heap(hkey, hcnt, hnode, size)
                _push(hkey, hcnt, hnode, size, dq, counter, q)
                size += 1
                counter += 1
    return settled


@njit(cache=True)
def boundary_mask(regions, offsets, out):  # noqa: ANN001, ANN201
    """Mark voxels with a neighbour in another region (both ids > 0) as 1 in ``out`` (uint8)."""
    n_off = offsets.shape[0]
    for p in range(regions.shape[0]):
        r = regions[p]
        if r <= 0:
            continue
        for k in range(n_off):
            rq = regions[p + offsets[k]]
            if rq > 0 and rq != r:
                out[p] = 1
                break
    return out
