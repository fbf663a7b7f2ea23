"""Pieces of the growing kernel's priority queue: binary heaps and chunked bucket storage.

Numba helpers for :func:`pointseg_cli.objectness._kernels.grow_buckets` (whose module docstring
describes the queue); like it they validate nothing and are compiled without reference counting.

- Heaps are three parallel arrays ``(key float64, counter int64, node)`` ordered by
  ``(key, counter)``.
- A bucket is a list of chunks of :data:`CHUNK` entries in a pool (``ckey`` float64, ``cnode``,
  both ``CHUNK`` entries per chunk; ``cnext`` int64 links chunks, one per chunk) described by a
  row ``(first chunk, last chunk, entries)`` of ``meta``; free chunks form a list through
  ``cnext``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Entries per chunk of a coarse bucket (a power of two).
CHUNK_SHIFT = 6
CHUNK = 1 << CHUNK_SHIFT
#: Insertion-sort moves per entry above which a bucket is sorted by a stable merge sort instead.
_MAX_MOVES_PER_ENTRY = 8

@njit(cache=True, inline="always", _nrt=False)
def _less(k1: float, c1: int, k2: float, c2: int) -> bool:
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
    """Append ``(key, node)`` to bucket ``slot``; returns the new ``(cfree, nfree, cused)``.

    ``meta[slot]`` is ``(first chunk, last chunk, entries)``. A new chunk comes from the free list
    when it has one, else from the end of the used part of the chunk pool. Capacity must suffice.
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


@njit(cache=True, inline="always", _nrt=False)
def _merge_pass(akey, anode, bkey, bnode, n, width):  # noqa: ANN001, ANN202
    """Merge neighbouring sorted runs of ``width`` entries of ``a`` into ``b`` (stable: left first on ties)."""
    for lo in range(0, n, 2 * width):
        mid = min(lo + width, n)
        hi = min(lo + 2 * width, n)
        i, j = lo, mid
        for k in range(lo, hi):
            if j >= hi or (i < mid and not akey[j] < akey[i]):
                bkey[k] = akey[i]
                bnode[k] = anode[i]
                i += 1
            else:
                bkey[k] = akey[j]
                bnode[k] = anode[j]
                j += 1


@njit(cache=True, _nrt=False)
def _merge_sort(skey, snode, tkey, tnode, n):  # noqa: ANN001, ANN202
    """Stable bottom-up merge sort of ``skey[:n]`` (``snode`` alongside), ``t*`` as scratch."""
    width = 1
    in_s = True
    while width < n:
        if in_s:
            _merge_pass(skey, snode, tkey, tnode, n, width)
        else:
            _merge_pass(tkey, tnode, skey, snode, n, width)
        in_s = not in_s
        width *= 2
    if not in_s:
        for k in range(n):
            skey[k] = tkey[k]
            snode[k] = tnode[k]


@njit(cache=True, _nrt=False)
def _load_run(meta, ckey, cnode, cnext, slot, skey, snode, tkey, tnode, fcnt, cfree):  # noqa: ANN001, ANN201
    """Move bucket ``slot`` into ``skey``/``snode`` sorted by ``(key, push order)``; frees its chunks.

    Entries are copied in push order into ``tkey``/``tnode``, distributed by a stable counting sort
    on a monotone function of the key (about one fine bucket per entry, over the keys' range) and
    finished by a stable insertion sort; should that take too many moves (keys bunched in a few fine
    buckets), a stable merge sort on the key finishes instead. Returns ``(n, cfree)``.
    """
    n = meta[slot, 2]
    c = meta[slot, 0]
    kmin = np.inf
    kmax = -np.inf
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
