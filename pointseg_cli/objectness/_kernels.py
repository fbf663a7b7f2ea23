"""Numba kernels for seeded region growing on flat, padded arrays.

Nothing here validates its inputs (:mod:`pointseg_cli.objectness.grow` does, pads and ravels):

- ``image`` is float32 ``(P, C)``: the padded image raveled over its spatial axes, channels last.
- ``regions`` is int32 ``(P,)``: ``-1`` on the one-voxel sentinel border, the region id at the
  seeds, ``0`` elsewhere; so look-ups ``p + offsets[k]`` from the interior need no bounds tests.
- ``dist`` is float64 ``(P,)``, ``inf`` except ``0`` at the seeds; ``offsets`` (int64) are the flat
  neighbour displacements in visiting order, ``weights`` (float64) scale the step cost along each.
- ``cost_mode`` is :data:`COST_PARENT` (a step ``p -> q`` costs ``sum_c (I[q,c] - I[p,c])**2``) or
  :data:`COST_SEED` (it costs ``sum_c (I[q,c] - refs[r-1,c])**2`` where ``r`` is the region id of
  ``p``); ``refs`` is float64 ``(R, C)`` with a row per region id ``1..R`` (ignored, any shape
  ``(>=0, C)``, for :data:`COST_PARENT`). Both are times the offset's weight.

The priority queue pops entries in ``(distance, push order)`` order, exactly as a binary heap on
``(key, counter)`` would: a two-level bucket queue on the quantised distance whose buckets are
chunk lists, sorted into a *run* in their turn (layout and exactness:
:mod:`pointseg_cli.objectness.buckets`). It does not allocate: when storage might run out it saves
its state and returns :data:`NEED_SPACE`; the caller grows the arrays and calls again.

Speed: the kernels run without numba's reference counting (``_nrt=False``; nothing here
allocates), which otherwise costs atomic increments and decrements on every call of a helper that
takes arrays, more than the queue work itself. Popping from the run, the kernel prefetches the
neighbourhood (``regions``, ``image``, in geodesic mode ``dist``) of the voxel
:data:`PREFETCH_AHEAD` entries later, so that cache misses overlap instead of coming one voxel
after the other. Everything the growing kernel calls lives in this module, because numba's
on-disk cache notices changes to a function's own file only.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _prefetch(typingctx, arr, idx):  # noqa: ANN001, ANN202, ARG001
    """Hint the CPU to fetch the cache line of ``arr[idx, 0, ...]`` for writing; no effect on results."""
    sig = types.void(arr, idx)

    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202, ARG001
        arrty, idxty = signature.args
        ary = context.make_array(arrty)(context, builder, args[0])
        first = context.cast(builder, args[1], idxty, types.intp)
        zero = context.get_constant(types.intp, 0)
        ptr = cgutils.get_item_pointer(context, builder, arrty, ary, [first] + [zero] * (arrty.ndim - 1))
        i8p = builder.bitcast(ptr, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p.type, i32, i32, i32])
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p.type], fnty)
        # (address, 1 = for writing, 3 = keep in all cache levels, 1 = data cache)
        builder.call(fn, [i8p, ir.Constant(i32, 1), ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return sig, codegen


#: ``cost_mode`` values of the growing kernels.
COST_PARENT = 0
COST_SEED = 1
#: Entries per chunk of a bucket (a power of two).
CHUNK_SHIFT = 6
CHUNK = 1 << CHUNK_SHIFT
#: Insertion-sort moves per entry above which a bucket is sorted by a stable merge sort instead.
_MAX_MOVES_PER_ENTRY = 8
#: Run entries ahead of the pop whose neighbourhoods are prefetched.
PREFETCH_AHEAD = 8


@njit(cache=True, inline="always", _nrt=False)
def _less(k1: float, c1: int, k2: float, c2: int) -> bool:  # heap order on (key, counter)
    return k1 < k2 or (k1 == k2 and c1 < c2)


@njit(cache=True, inline="always", _nrt=False)
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


@njit(cache=True, inline="always", _nrt=False)
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


@njit(cache=True, inline="always", _nrt=False)
def _append(meta, ckey, cnode, cnext, slot, key, node, cfree, nfree, cused):  # noqa: ANN001, ANN202
    """Append to bucket ``slot`` (``meta[slot]`` = first chunk, last chunk, entries); capacity must suffice.

    A new chunk comes from the free list, else from the unused end of the pool. Returns ``(cfree, nfree, cused)``.
    """
    n = meta[slot, 2]
    off = n & (CHUNK - 1)
    if off == 0:
        if cfree >= 0:
            c = cfree
            cfree = cnext[c]
            nfree -= 1
        else:
            c = cused
            cused += 1
        if n == 0:
            meta[slot, 0] = c
        else:
            cnext[meta[slot, 1]] = c
        meta[slot, 1] = c
    else:
        c = meta[slot, 1]
    e = (c << CHUNK_SHIFT) + off
    ckey[e] = key
    cnode[e] = node
    meta[slot, 2] = n + 1
    return cfree, nfree, cused


@njit(cache=True, _nrt=False)
def _merge_sort(skey, snode, tkey, tnode, n):  # noqa: ANN001, ANN202
    """Stable bottom-up merge sort of ``skey[:n]`` (``snode`` alongside), ``t*`` as scratch."""
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):  # merge [lo, mid) and [mid, hi) into t, left first on ties
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and not skey[j] < skey[i]):
                    tkey[k], tnode[k] = skey[i], snode[i]
                    i += 1
                else:
                    tkey[k], tnode[k] = skey[j], snode[j]
                    j += 1
        for k in range(n):
            skey[k], snode[k] = tkey[k], tnode[k]
        width *= 2


@njit(cache=True, _nrt=False)
def _load_run(meta, ckey, cnode, cnext, slot, skey, snode, tkey, tnode, fcnt, cfree):  # noqa: ANN001, ANN201
    """Move bucket ``slot`` into ``skey``/``snode`` sorted by ``(key, push order)``; frees its chunks.

    Copied in push order to ``t*``, then a stable counting sort on a monotone function of the key
    (one fine bucket per entry over the keys' range) and a stable insertion sort, or a stable merge
    sort if that takes too many moves (keys bunched in a few fine buckets). Returns ``(n, cfree)``.
    """
    n, c = meta[slot, 2], meta[slot, 0]
    kmin, kmax = np.inf, -np.inf
    for k in range(n):
        off = k & (CHUNK - 1)
        if off == 0 and k > 0:
            c = cnext[c]
        e = (c << CHUNK_SHIFT) + off
        key = ckey[e]
        tkey[k] = key
        tnode[k] = cnode[e]
        kmin = min(kmin, key)
        kmax = max(kmax, key)
    cnext[meta[slot, 1]] = cfree
    cfree = meta[slot, 0]
    meta[slot, 2] = 0
    scale = (n - 1) / (kmax - kmin) if kmax > kmin else 0.0
    if n <= 16 or not 0.0 < scale < np.inf:
        for k in range(n):
            skey[k] = tkey[k]
            snode[k] = tnode[k]
    else:
        for f in range(n + 1):
            fcnt[f] = 0
        for k in range(n):
            fcnt[min(np.int64((tkey[k] - kmin) * scale), n - 1) + 1] += 1
        for f in range(n):
            fcnt[f + 1] += fcnt[f]
        for k in range(n):
            f = min(np.int64((tkey[k] - kmin) * scale), n - 1)
            pos = fcnt[f]
            fcnt[f] = pos + 1
            skey[pos] = tkey[k]
            snode[pos] = tnode[k]
    # stable insertion sort: after the counting sort only entries of one fine bucket are out of order
    budget = _MAX_MOVES_PER_ENTRY * n + 256
    for k in range(1, n):
        key = skey[k]
        if not skey[k - 1] > key:
            continue
        node = snode[k]
        j = k
        while j > 0 and skey[j - 1] > key:
            skey[j] = skey[j - 1]
            snode[j] = snode[j - 1]
            j -= 1
        skey[j] = key
        snode[j] = node
        budget -= k - j
        if budget < 0:
            _merge_sort(skey, snode, tkey, tnode, n)
            break
    return n, cfree


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

    ``inv_delta`` >= 0 is the inverse bucket width (0: one bucket, the heap alone); ``meta`` int64
    ``(B, 3)`` (``B`` a power of two, zeros) and the chunk pool ``ckey`` (float64), ``cnode``
    (``CHUNK`` entries a chunk), ``cnext`` (int64, one a chunk) hold the buckets. The run is
    ``skey``/``snode`` from ``state[S_RUN_POS]`` to ``state[S_RUN_LEN]``; ``tkey``/``tnode`` (same
    size) and ``fcnt`` (int64, one longer) are scratch for sorting it. Heaps are ``(float64, int64,
    node)``. ``state`` starts as zeros except ``S_CFREE = -1`` and ``S_RUN_LEN = n_seeds``, the seeds
    in the run at key 0 in their order. On :data:`NEED_SPACE` the caller makes room for
    ``state[S_HSIZE] + n_off`` heap entries, ``state[S_OSIZE] + n_off`` overflow entries,
    ``state[S_CUSED] - state[S_NFREE] + state[S_OSIZE] + n_off`` chunks and ``state[S_LOAD]`` run
    entries (``n_off = len(offsets)``), then calls again. ``state[S_POPPED]`` counts settled voxels.
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
                if si + PREFETCH_AHEAD < sn:  # the neighbours of a voxel popped soon (see module docstring)
                    ahead = snode[si + PREFETCH_AHEAD]
                    for k in range(n_off):
                        _prefetch(regions, ahead + offsets[k])
                        _prefetch(image, ahead + offsets[k])
                        if geodesic:
                            _prefetch(dist, ahead + offsets[k])
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
