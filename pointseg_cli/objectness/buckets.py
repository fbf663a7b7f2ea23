"""Driver of the bucket-queue growing kernel: sizes its queue and grows its storage on demand.

:func:`pointseg_cli.objectness.grow.compute_objectness` validates and pads the inputs, then calls
:func:`grow_regions` here, which runs :func:`pointseg_cli.objectness._kernels.grow_buckets`
and, each time the kernel stops for lack of space, enlarges its storage and resumes it.
:func:`bucket_count` and :func:`inverse_bucket_width` choose the queue's window; they change only
the speed, never the result.

The priority queue pops entries in ``(distance, push order)`` order, exactly as a binary heap on
``(key, counter)`` would. Because every step cost is ``>= 0``, popped distances never decrease, so
the queue is a circular two-level *bucket* queue over the quantised distance
``floor(d * inv_delta)``, laid out so that entries are written and read back sequentially:

- every bucket within the window of ``len(meta)`` buckets after the current one is an
  append-only list of fixed-size chunks (keys in ``ckey``, nodes in ``cnode``, chunks linked by
  ``cnext``, ``_kernels.CHUNK`` entries a chunk; free chunks form a list through ``cnext``) in push
  order, so an append writes next to the bucket's previous entry;
- when a bucket's turn comes, ``_kernels._load_run`` copies it into the *run* (``skey``,
  ``snode``), sorted by ``(key, push order)`` with a stable counting sort on a monotone function
  of the key and a stable insertion sort (a stable merge sort if the keys are bunched), and frees
  its chunks;
- pushes that fall into the current bucket go to a small binary heap on ``(key, counter)``
  (``hkey``, ``hcnt``, ``hnode``); they were pushed after every run entry, so on equal keys the
  run pops first;
- pushes beyond the window go to an *overflow* heap on ``(key, overflow counter)``, appended to
  their bucket as soon as the window reaches them (before any direct push to that bucket can
  happen, so bucket order stays push order).

Ties therefore pop first-in first-out, as in the reference; the bucket width only changes speed.
"""

from __future__ import annotations

import numpy as np

from pointseg_cli.objectness import _kernels

#: Bucket-queue window: about one bucket per 4,096 voxels, between 2**8 and 2**12 buckets.
_VOXELS_PER_BUCKET = 4096
_MIN_BUCKETS, _MAX_BUCKETS = 2**8, 2**12
#: Step costs sampled to choose the bucket width.
_N_COST_SAMPLES = 4096


def bucket_count(n_vox: int) -> int:
    """Power-of-two number of buckets in the queue's circular window."""
    want = min(max(n_vox // _VOXELS_PER_BUCKET, _MIN_BUCKETS), _MAX_BUCKETS)
    return 1 << (want - 1).bit_length()


def inverse_bucket_width(
    pimg: np.ndarray, regions: np.ndarray, flat_offsets: np.ndarray, weights: np.ndarray, refs: np.ndarray,
    cost_mode: int, *, spatial: tuple[int, ...], strides: np.ndarray, max_step: float, n_buckets: int,
) -> float:
    """``1 / bucket width`` so that the window spans the 99th percentile of sampled step costs.

    Only speed depends on it: the queue pops in exact ``(distance, push order)`` order for any
    width. Sampling is deterministic (fixed generator seed). Returns 0 (a single bucket) when all
    steps are free.
    """
    if not max_step > 0:
        return 0.0
    rng = np.random.default_rng(0)
    coords = np.stack([rng.integers(0, s, _N_COST_SAMPLES) for s in spatial], axis=1)
    p = (coords + 1) @ strides
    k = rng.integers(0, len(flat_offsets), _N_COST_SAMPLES)
    q = p + flat_offsets[k]
    inside = regions[q] >= 0
    p, q, k = p[inside], q[inside], k[inside]
    if cost_mode == _kernels.COST_SEED and len(refs):
        other = refs[rng.integers(0, len(refs), len(p))]
    else:
        other = pimg[p].astype(np.float64)
    costs = weights[k] * ((pimg[q].astype(np.float64) - other) ** 2).sum(axis=1)
    scale = float(np.quantile(costs, 0.99)) if costs.size else 0.0
    if not scale > 0:
        scale = max_step
    # keep floor(d * inv_delta) well inside int64 for every reachable distance d <= n_vox * max_step
    limit = 2.0**60 / (max_step * float(np.prod(spatial)))
    return min(n_buckets / scale, limit)


def _enlarged(a: np.ndarray, n: int) -> np.ndarray:
    """``a`` copied into a new array of length ``max(n, 2 len(a))`` (same dtype)."""
    out = np.empty(max(n, 2 * len(a)), a.dtype)
    out[: len(a)] = a
    return out


def grow_regions(
    image: np.ndarray, regions: np.ndarray, dist: np.ndarray, offsets: np.ndarray, weights: np.ndarray,
    seeds: np.ndarray, seed_labels: np.ndarray, refs: np.ndarray, cost_mode: int, *, geodesic: bool,
    inv_delta: float, n_buckets: int,
) -> int:
    """Run :func:`_kernels.grow_buckets` on flat padded arrays, growing its storage as it asks.

    Arrays as in the kernel module's preconditions (``regions`` 0 inside, ``dist`` inf), plus
    ``seeds`` (int64 flat indices, distinct) and their ``seed_labels``; fills ``regions`` and
    ``dist`` in place and returns the number of settled voxels. ``n_buckets`` must be a power of
    two; with ``inv_delta = 0`` all entries share one bucket (a plain binary heap).
    """
    k = _kernels
    n_seeds = len(seeds)
    idx = np.int32 if len(regions) < 2**31 else np.int64  # node indices
    n_off = len(offsets)
    regions[seeds] = seed_labels
    dist[seeds] = 0.0
    ccap = max(len(regions) // (64 * k.CHUNK), 4 * n_off)  # chunks
    ckey, cnode, cnext = np.empty(ccap * k.CHUNK), np.empty(ccap * k.CHUNK, idx), np.empty(ccap, np.int64)
    scap = max(n_seeds, 256)
    skey, snode, tkey, tnode = np.zeros(scap), np.empty(scap, idx), np.empty(scap), np.empty(scap, idx)
    snode[:n_seeds] = seeds
    fcnt = np.empty(scap + 1, np.int64)
    hcap = 256 + 2 * n_off
    hkey, hcnt, hnode = np.empty(hcap), np.empty(hcap, np.int64), np.empty(hcap, idx)
    ocap = 256 + 2 * n_off
    okey, ocnt, onode = np.empty(ocap), np.empty(ocap, np.int64), np.empty(ocap, idx)
    meta = np.zeros((n_buckets, 3), np.int64)
    state = np.zeros(k.STATE_LEN, np.int64)
    state[k.S_CFREE], state[k.S_RUN_LEN] = -1, n_seeds
    while k.grow_buckets(image, regions, dist, offsets, weights, refs, cost_mode, geodesic, inv_delta,
                         meta, ckey, cnode, cnext, skey, snode, tkey, tnode, fcnt, hkey, hcnt, hnode,
                         okey, ocnt, onode, state) == k.NEED_SPACE:
        hsize, osize, load = (int(state[i]) for i in (k.S_HSIZE, k.S_OSIZE, k.S_LOAD))
        chunks = int(state[k.S_CUSED] - state[k.S_NFREE]) + osize + n_off
        if chunks > len(cnext):
            cnext = _enlarged(cnext, chunks + n_off)
            ckey, cnode = (_enlarged(a, len(cnext) * k.CHUNK) for a in (ckey, cnode))
        if hsize + n_off > len(hkey):
            hkey, hcnt, hnode = (_enlarged(a, hsize + 2 * n_off) for a in (hkey, hcnt, hnode))
        if osize + n_off > len(okey):
            okey, ocnt, onode = (_enlarged(a, osize + 2 * n_off) for a in (okey, ocnt, onode))
        if load > len(skey):
            skey, snode, tkey, tnode = (_enlarged(a, load) for a in (skey, snode, tkey, tnode))
            fcnt = np.empty(len(skey) + 1, np.int64)
    return int(state[k.S_POPPED])
