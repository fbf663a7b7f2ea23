"""Numba kernels for seeded region growing on flat, padded arrays.

Nothing here validates its inputs; :mod:`pointseg_cli.objectness.grow` does that, pads and
ravels. Shared preconditions of the growing kernel:

- ``image`` is float32 ``(P, C)``: the padded image raveled over its spatial axes, channels last.
- ``regions`` is int32 ``(P,)``: ``-1`` on the one-voxel sentinel border, ``0`` everywhere else
  except at the seeds, which hold their region ids. Because every border voxel is ``-1``,
  neighbour look-ups ``p + offsets[k]`` from an interior voxel never leave the array and need no
  bounds tests.
- ``dist`` is float64 ``(P,)``, ``inf`` except ``0`` at the seeds.
- ``offsets`` (int64) are the flat neighbour displacements in visiting order; ``weights``
  (float64) multiply the intensity cost of a step along the matching offset.
- ``cost_mode`` is :data:`COST_PARENT` (a step ``p -> q`` costs ``sum_c (I[q,c] - I[p,c])**2``) or
  :data:`COST_SEED` (it costs ``sum_c (I[q,c] - refs[r-1,c])**2`` where ``r`` is the region id of
  ``p``); ``refs`` is float64 ``(R, C)`` with a row per region id ``1..R`` (ignored, any shape
  ``(>=0, C)``, for :data:`COST_PARENT`). Both are times the offset's weight.

The priority queue pops entries in ``(distance, push order)`` order, exactly as a binary heap on
``(key, counter)`` would. Because every step cost is ``>= 0``, popped distances never decrease, so
the queue is a circular two-level *bucket* queue over the quantised distance
``floor(d * inv_delta)``, laid out so that entries are written and read back sequentially:

- every bucket within the window of ``len(meta)`` buckets after the current one is an
  append-only list of fixed-size chunks (keys in ``ckey``, nodes in ``cnode``, chunks linked by
  ``cnext``; see :mod:`pointseg_cli.objectness._queue`) in push order, so an append writes next
  to the bucket's previous entry;
- when a bucket's turn comes, ``_queue._load_run`` copies it into the *run* (``skey``,
  ``snode``), sorted by ``(key, push order)`` with a stable counting sort on a monotone function
  of the key and a stable insertion sort (a stable merge sort if the keys are bunched), and frees
  its chunks;
- pushes that fall into the current bucket go to a small binary heap on ``(key, counter)``
  (``hkey``, ``hcnt``, ``hnode``); they were pushed after every run entry, so on equal keys the
  run pops first;
- pushes beyond the window go to an *overflow* heap on ``(key, overflow counter)``, appended to
  their bucket as soon as the window reaches them (before any direct push to that bucket can
  happen, so bucket order stays push order).

Ties therefore pop first-in first-out, as in the reference. The bucket width only changes speed,
never the result. :func:`grow_buckets` does not allocate: when the chunk pool, the run, the heap
or the overflow heap might run out it saves its state and returns :data:`NEED_SPACE`, and the
caller grows the arrays and calls again.

The kernels are compiled without numba's reference counting (``_nrt=False``): with it, every
call of a helper that takes arrays (heap push and pop, append, step cost) increments and
decrements atomic reference counts, which cost more than the queue work itself. Nothing here
allocates, so nothing needs counting.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pointseg_cli.objectness._queue import CHUNK, CHUNK_SHIFT, _append, _load_run, _pop_root, _push

#: ``cost_mode`` values of the growing kernels.
COST_PARENT = 0
COST_SEED = 1


@njit(cache=True, inline="always", _nrt=False)
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


#: Return codes of :func:`grow_buckets`.
DONE = 0
NEED_SPACE = 1

#: Layout of the ``state`` array of :func:`grow_buckets` (int64).
(S_HSIZE, S_COUNTER, S_CUR, S_PENDING, S_CFREE, S_NFREE, S_CUSED, S_POPPED, S_OSIZE, S_OSEQ, S_RUN_POS,
 S_RUN_LEN, S_LOAD) = range(13)
STATE_LEN = 13


@njit(cache=True, _nrt=False)
def grow_buckets(  # noqa: ANN201, PLR0912, PLR0915
    image, regions, dist, offsets, weights, refs, cost_mode, geodesic, inv_delta,  # noqa: ANN001
    meta, ckey, cnode, cnext, skey, snode, tkey, tnode, fcnt, hkey, hcnt, hnode, okey, ocnt, onode,  # noqa: ANN001
    state,  # noqa: ANN001
):
    """Grow all regions; resumable. Returns :data:`DONE` or :data:`NEED_SPACE`.

    ``geodesic`` False: a voxel is labelled, for good, when first pushed (the paper's growing).
    True: exact multi-source Dijkstra with lazy deletion; a voxel takes the region of the
    neighbour that gives it a strictly shorter distance and stale entries are skipped.

    ``inv_delta`` >= 0 is the inverse coarse bucket width (0: one bucket, the heap alone);
    ``meta`` is int64 ``(B, 3)``, ``B`` a power of two, zero-filled. The chunk pool is ``ckey``
    (float64), ``cnode`` (index dtype), ``CHUNK`` entries per chunk, and ``cnext`` (int64, one per
    chunk). The current bucket's sorted run is ``skey``/``snode`` (``state[S_RUN_POS]`` up to
    ``state[S_RUN_LEN]``), ``tkey``/``tnode`` the same size and ``fcnt`` (int64) one longer are
    scratch for sorting it. Heap and overflow heap arrays are ``(float64, int64, index dtype)``.
    ``state`` (see ``S_*``) starts as zeros except ``S_CFREE = -1`` and ``S_RUN_LEN = n_seeds``,
    with the seeds in the run at key 0 in their order. On :data:`NEED_SPACE` the caller makes the
    heap hold ``state[S_HSIZE] + len(offsets)`` entries, the overflow heap ``state[S_OSIZE] +
    len(offsets)``, the chunk pool ``state[S_CUSED] - state[S_NFREE] + state[S_OSIZE] +
    len(offsets)`` chunks and, when ``state[S_LOAD]`` is non-zero, the run and its scratch
    ``state[S_LOAD]`` entries (``fcnt`` one more); then calls again. ``state[S_POPPED]`` counts
    settled voxels.
    """
    n_buckets = meta.shape[0]
    mask = n_buckets - 1
    n_off = offsets.shape[0]
    ccap = cnext.shape[0]
    hcap = hkey.shape[0]
    ocap = okey.shape[0]
    hsize = state[S_HSIZE]
    counter = state[S_COUNTER]
    cur = state[S_CUR]
    pending = state[S_PENDING]
    cfree = state[S_CFREE]
    nfree = state[S_NFREE]
    cused = state[S_CUSED]
    popped = state[S_POPPED]
    osize = state[S_OSIZE]
    oseq = state[S_OSEQ]
    si = state[S_RUN_POS]
    sn = state[S_RUN_LEN]
    load = state[S_LOAD]  # > 0: bucket ``cur`` (this many entries) waits to be sorted into the run
    status = DONE
    while True:
        if hsize + n_off > hcap or cused - nfree + osize + n_off > ccap or osize + n_off > ocap:
            status = NEED_SPACE
            break
        if si < sn or hsize > 0:
            # the run's entries were pushed before any heap entry: they go first on equal keys
            if si < sn and (hsize == 0 or skey[si] <= hkey[0]):
                dp = skey[si]
                p = snode[si]
                si += 1
            else:
                dp, p = _pop_root(hkey, hcnt, hnode, hsize)
                hsize -= 1
            if geodesic and dp > dist[p]:
                continue
            popped += 1
            lab = regions[p]
            for k in range(n_off):
                q = p + offsets[k]
                rq = regions[q]
                if geodesic:
                    if rq < 0:
                        continue
                elif rq != 0:
                    continue
                dq = dp + _step_cost(image, refs, cost_mode, p, q, lab, weights[k])
                if geodesic and not dq < dist[q]:
                    continue
                regions[q] = lab
                dist[q] = dq
                ab = np.int64(dq * inv_delta)
                if ab == cur:
                    _push(hkey, hcnt, hnode, hsize, dq, counter, q)
                    hsize += 1
                    counter += 1
                elif ab - cur < n_buckets:
                    cfree, nfree, cused = _append(meta, ckey, cnode, cnext, ab & mask, dq, q, cfree, nfree, cused)
                    pending += 1
                else:
                    _push(okey, ocnt, onode, osize, dq, oseq, q)
                    osize += 1
                    oseq += 1
            continue
        if load == 0:
            if pending == 0 and osize == 0:
                break
            # advance to the next non-empty bucket, moving overflow entries in as the window reaches them
            while True:
                cur += 1
                if pending == 0:
                    cur = max(cur, np.int64(okey[0] * inv_delta) - n_buckets + 1)
                while osize > 0 and np.int64(okey[0] * inv_delta) - cur < n_buckets:
                    kj, nd = _pop_root(okey, ocnt, onode, osize)
                    osize -= 1
                    if geodesic and kj > dist[nd]:
                        continue
                    slot = np.int64(kj * inv_delta) & mask
                    cfree, nfree, cused = _append(meta, ckey, cnode, cnext, slot, kj, nd, cfree, nfree, cused)
                    pending += 1
                if meta[cur & mask, 2] > 0 or (pending == 0 and osize == 0):
                    break
            load = meta[cur & mask, 2]
            if load == 0:
                break
        if load > skey.shape[0]:  # the run's arrays must grow first
            status = NEED_SPACE
            break
        sn, cfree = _load_run(meta, ckey, cnode, cnext, cur & mask, skey, snode, tkey, tnode, fcnt, cfree)
        nfree += (sn + CHUNK - 1) >> CHUNK_SHIFT
        pending -= sn
        si = 0
        load = 0
        counter = 0
    state[S_HSIZE] = hsize
    state[S_COUNTER] = counter
    state[S_CUR] = cur
    state[S_PENDING] = pending
    state[S_CFREE] = cfree
    state[S_NFREE] = nfree
    state[S_CUSED] = cused
    state[S_POPPED] = popped
    state[S_OSIZE] = osize
    state[S_OSEQ] = oseq
    state[S_RUN_POS] = si
    state[S_RUN_LEN] = sn
    state[S_LOAD] = load
    return status


@njit(cache=True, _nrt=False)
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
