"""The growing kernel's bucket storage: chunked appends and the sorted run of one bucket."""

from __future__ import annotations

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pointseg_cli.objectness import _kernels, _outputs


def _bucket(keys: np.ndarray) -> tuple:
    """One bucket holding ``keys`` (nodes 0..n-1 in push order) in a fresh chunk pool."""
    n = len(keys)
    n_chunks = (n + _kernels.CHUNK - 1) // _kernels.CHUNK
    meta = np.zeros((1, 3), np.int64)
    ckey, cnode = np.empty(n_chunks * _kernels.CHUNK), np.empty(n_chunks * _kernels.CHUNK, np.int32)
    cnext = np.full(n_chunks, -7, np.int64)
    cfree, nfree, cused = -1, 0, 0
    for i, key in enumerate(keys):
        cfree, nfree, cused = _kernels._append(meta, ckey, cnode, cnext, 0, key, i, cfree, nfree, cused)
    return meta, ckey, cnode, cnext, cused


@st.composite
def bucket_keys(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, 300))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["uniform", "ties", "bunched", "equal"]))
    if kind == "uniform":
        keys = rng.random(n)
    elif kind == "ties":
        keys = rng.integers(0, 5, n) / 4
    elif kind == "bunched":  # nearly all in the first fine bucket, out of order: the merge-sort fallback
        keys = rng.random(n) * 1e-9
        keys[rng.integers(0, n, min(n, 2))] = 1e6
    else:
        keys = np.full(n, 0.25)
    return keys.astype(np.float64)


_BUNCHED = np.concatenate([np.random.default_rng(0).random(299) * 1e-9, [1e6]])  # insertion sort gives up


@settings(max_examples=150, deadline=None)
@given(bucket_keys())
@example(_BUNCHED)
def test_run_is_sorted_by_key_then_push_order(keys: np.ndarray) -> None:
    n = len(keys)
    meta, ckey, cnode, cnext, cused = _bucket(keys)
    assert meta[0, 2] == n and cused == (n + _kernels.CHUNK - 1) // _kernels.CHUNK
    size = n
    skey, snode = np.empty(size), np.empty(size, np.int32)
    tkey, tnode, fcnt = np.empty(size), np.empty(size, np.int32), np.empty(size + 1, np.int64)
    got, cfree = _kernels._load_run(meta, ckey, cnode, cnext, 0, skey, snode, tkey, tnode, fcnt, -1)
    order = np.argsort(keys, kind="stable")
    assert got == n and meta[0, 2] == 0
    np.testing.assert_array_equal(snode[:n], order)
    np.testing.assert_array_equal(skey[:n], keys[order])
    # every chunk of the bucket is back on the free list, which ends where it was (-1)
    freed, c = [], cfree
    while c >= 0 and len(freed) <= cused:
        freed.append(c)
        c = cnext[c]
    assert sorted(freed) == list(range(cused)) and c == -1


def test_kernels_are_compiled_without_reference_counting() -> None:
    # with numba's reference counting every helper call that takes arrays costs atomic
    # increments and decrements, several times the queue work itself (see _kernels' docstring)
    for fn in (_kernels.grow_buckets, _outputs.interior_outputs, _kernels._load_run, _kernels._append, _kernels._push):
        assert fn.targetoptions.get("_nrt") is False, fn.py_func.__name__
