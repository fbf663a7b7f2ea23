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
the queue is a circular *bucket* queue over the quantised distance ``floor(d * inv_delta)``:

- the bucket being drained lives in a small binary heap on ``(key, counter)`` (``hkey``, ``hcnt``,
  ``hnode``); pushes that fall into it go straight to the heap;
- every later bucket within the window of ``len(bhead)`` buckets is a singly linked list, newest
  first, in a pool of entries ``(key, node, next)`` (``pool`` and its float64 view ``pool_f``)
  with a free list. When a bucket's turn comes its list is moved into the heap with
  counters that keep the push order (the heap is empty then, so only the order within a bucket
  matters);
- pushes beyond the window go to an *overflow* heap on ``(key, overflow counter)``, moved into
  their bucket's list as soon as the window reaches them (before any direct push to that bucket
  can happen, so list order stays push order).

Ties therefore pop first-in first-out, as in the reference. The bucket width only changes speed,
never the result. :func:`grow_buckets` does not allocate: when the pool, the heap or the overflow
heap might run out it saves its state and returns :data:`NEED_SPACE`, and the caller grows the
arrays and calls again (also in the middle of moving a bucket into the heap).
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


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
def _pop_root(hkey, hcnt, hnode, size):  # noqa: ANN001, ANN202
    """Remove the root of a heap holding ``size`` entries; returns the root's ``(key, node)``."""
    root_key = hkey[0]
    root_node = hnode[0]
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
    return root_key, root_node


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


#: Return codes of :func:`grow_buckets`.
DONE = 0
NEED_SPACE = 1

#: Layout of the ``state`` array of :func:`grow_buckets` (int64).
(S_SIZE, S_COUNTER, S_CUR, S_PENDING, S_FREE, S_USED, S_POPPED, S_OSIZE, S_OSEQ, S_ACTIVE, S_RANK) = range(11)
STATE_LEN = 11


@njit(cache=True, inline="always")
def _list_push(pool, pool_f, bhead, slot, key, node, free, used, ew, fw, kn):  # noqa: ANN001, ANN202
    """Prepend ``(key, node)`` to bucket ``slot``'s list; returns the new ``(free, used)``.

    The entry comes from the free list when it has one, else from the end of the used part of
    the pool. Capacity must suffice.
    """
    if free >= 0:
        j = free
        free = pool[ew * j + kn + 1]
    else:
        j = used
        used += 1
    pool_f[fw * j] = key
    pool[ew * j + kn] = node
    pool[ew * j + kn + 1] = bhead[slot]
    bhead[slot] = j
    return free, used


@njit(cache=True)
def grow_buckets(  # noqa: ANN201, PLR0912, PLR0915
    image, regions, dist, offsets, weights, refs, cost_mode, geodesic, inv_delta,  # noqa: ANN001
    bhead, pool, pool_f, hkey, hcnt, hnode, okey, ocnt, onode, state,  # noqa: ANN001
):
    """Grow all regions; resumable. Returns :data:`DONE` or :data:`NEED_SPACE`.

    ``geodesic`` False: a voxel is labelled, for good, when first pushed (the paper's growing).
    True: exact multi-source Dijkstra with lazy deletion; a voxel takes the region of the
    neighbour that gives it a strictly shorter distance and stale entries are skipped.

    ``inv_delta`` >= 0 is the inverse bucket width (0: one bucket, the heap alone);
    ``len(bhead)`` a power of two, ``bhead`` int64 filled with ``-1``. ``pool`` is int32 (4 words
    per entry: float64 key, node, next) or int64 (3 words) and ``pool_f`` its float64 view; heap
    and overflow heap arrays are ``(float64, int64, pool dtype)``. ``state`` (see ``S_*``) starts
    as ``[n_seeds, n_seeds, 0, 0, -1, 0, 0, 0, 0, 0, 0]`` with the seeds in the heap at key 0,
    counters ``0..n_seeds-1``. On :data:`NEED_SPACE` the caller makes the pool hold
    ``state[S_USED] + state[S_OSIZE] + len(offsets)`` entries, the heap ``state[S_SIZE] +
    len(offsets)`` and the overflow heap ``state[S_OSIZE] + len(offsets)``, then calls again.
    ``state[S_POPPED]`` counts settled voxels.
    """
    n_buckets = bhead.shape[0]
    mask = n_buckets - 1
    n_off = offsets.shape[0]
    ew = 4 if pool.itemsize == 4 else 3  # pool words per entry
    fw = ew * pool.itemsize // 8  # float64 words per entry
    kn = 8 // pool.itemsize  # word of the node within an entry (the key takes the first 8 bytes)
    pcap = pool.shape[0] // ew
    hcap = hkey.shape[0]
    ocap = okey.shape[0]
    size = state[S_SIZE]
    counter = state[S_COUNTER]
    cur = state[S_CUR]
    pending = state[S_PENDING]
    free = state[S_FREE]
    used = state[S_USED]
    popped = state[S_POPPED]
    osize = state[S_OSIZE]
    oseq = state[S_OSEQ]
    active = state[S_ACTIVE]  # 1 while a bucket's list is being moved into the heap
    rank = state[S_RANK]
    status = DONE
    while True:
        if size + n_off > hcap or used + osize + n_off > pcap or osize + n_off > ocap:
            status = NEED_SPACE
            break
        if size == 0 or active:
            if not active:
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
                        free, used = _list_push(pool, pool_f, bhead, slot, kj, nd, free, used, ew, fw, kn)
                        pending += 1
                    if bhead[cur & mask] >= 0 or (pending == 0 and osize == 0):
                        break
                active = 1
                rank = 0
            # move the list into the heap; it is newest first, so older entries get smaller counters
            slot = cur & mask
            j = bhead[slot]
            while j >= 0 and size < hcap:
                kj = pool_f[fw * j]
                nd = pool[ew * j + kn]
                nxt = pool[ew * j + kn + 1]
                pool[ew * j + kn + 1] = free
                free = j
                pending -= 1
                if not (geodesic and kj > dist[nd]):
                    _push(hkey, hcnt, hnode, size, kj, rank, nd)
                    size += 1
                rank -= 1
                j = nxt
            bhead[slot] = j
            if j >= 0:  # the heap is full: resume here once it has grown
                status = NEED_SPACE
                break
            active = 0
            counter = 1
            continue
        dp, p = _pop_root(hkey, hcnt, hnode, size)
        size -= 1
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
                _push(hkey, hcnt, hnode, size, dq, counter, q)
                size += 1
                counter += 1
            elif ab - cur < n_buckets:
                slot = ab & mask
                free, used = _list_push(pool, pool_f, bhead, slot, dq, q, free, used, ew, fw, kn)
                pending += 1
            else:
                _push(okey, ocnt, onode, osize, dq, oseq, q)
                osize += 1
                oseq += 1
    state[S_SIZE] = size
    state[S_COUNTER] = counter
    state[S_CUR] = cur
    state[S_PENDING] = pending
    state[S_FREE] = free
    state[S_USED] = used
    state[S_POPPED] = popped
    state[S_OSIZE] = osize
    state[S_OSEQ] = oseq
    state[S_ACTIVE] = active
    state[S_RANK] = rank
    return status


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
