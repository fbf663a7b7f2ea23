"""Numba kernels of the per-component instance step: squared distance transform and seeded flooding.

Nothing here validates its inputs; :func:`pointseg_cli.infer.watershed.segment_component` does
that. :mod:`pointseg_cli.infer.watershed_reference` (scipy's distance transform, scikit-image's
watershed over whole windows) is the oracle the tests compare these with.

:func:`sq_distance_3d`
    Felzenszwalb & Huttenlocher's separable transform on a ``(Z, Y, X)`` float64 array that is
    ``0`` on features and ``inf`` elsewhere, in place, one axis after the other (Z, then Y, then
    X). A value is ``(dz*sz)**2 + (dy*sy)**2 + (dx*sx)**2`` summed in that order for its nearest
    feature, the same terms and order as :func:`scipy.ndimage.distance_transform_edt`.
:func:`flood`
    Seeded watershed on flat, padded arrays, the algorithm of scikit-image's ``watershed``
    (compactness 0, no watershed line): a voxel takes the label of the first labelled neighbour
    that is popped, popping in increasing ``rank``. Preconditions: ``mask`` is 0 on a one-voxel
    border (so ``i + offsets[k]`` never leaves the array from a voxel inside the mask); ``rank``
    holds a distinct value on every mask voxel (the flooding order), so no tie-break is needed;
    ``labels`` is int32, the markers' ids on marker voxels inside the mask and 0 elsewhere.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _envelope_1d(f: np.ndarray, n: int, scale: float, out: np.ndarray, v: np.ndarray, z: np.ndarray) -> None:
    """Lower envelope of parabolas ``(scale * (q - p))**2 + f[p]`` over the finite ``f[p]``."""
    w = scale * scale
    k = -1
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        if k < 0:
            k = 0
            v[0] = q
            z[0] = -np.inf
            z[1] = np.inf
            continue
        while True:
            p = v[k]
            s = ((fq + w * q * q) - (f[p] + w * p * p)) / (2.0 * w * (q - p))
            if s <= z[k] and k > 0:
                k -= 1
                continue
            if s <= z[k]:  # k == 0: the new parabola is lower everywhere
                v[0] = q
                z[0] = -np.inf
                z[1] = np.inf
                break
            k += 1
            v[k] = q
            z[k] = s
            z[k + 1] = np.inf
            break
    if k < 0:
        for q in range(n):
            out[q] = np.inf
        return
    j = 0
    for q in range(n):
        while z[j + 1] < q:
            j += 1
        d = scale * (q - v[j])
        out[q] = d * d + f[v[j]]


@njit(cache=True)
def sq_distance_3d(f: np.ndarray, sz: float, sy: float, sx: float) -> None:
    """Squared Euclidean distance to the nearest zero of ``f`` (0 or inf), in place."""
    nz, ny, nx = f.shape
    m = max(nz, ny, nx)
    line = np.empty(m, np.float64)
    res = np.empty(m, np.float64)
    v = np.empty(m, np.int64)
    z = np.empty(m + 1, np.float64)
    for y in range(ny):
        for x in range(nx):
            for i in range(nz):
                line[i] = f[i, y, x]
            _envelope_1d(line, nz, sz, res, v, z)
            for i in range(nz):
                f[i, y, x] = res[i]
    for i in range(nz):
        for x in range(nx):
            for y in range(ny):
                line[y] = f[i, y, x]
            _envelope_1d(line, ny, sy, res, v, z)
            for y in range(ny):
                f[i, y, x] = res[y]
    for i in range(nz):
        for y in range(ny):
            for x in range(nx):
                line[x] = f[i, y, x]
            _envelope_1d(line, nx, sx, res, v, z)
            for x in range(nx):
                f[i, y, x] = res[x]


@njit(cache=True)
def flood(rank: np.ndarray, labels: np.ndarray, mask: np.ndarray, offsets: np.ndarray, capacity: int) -> None:
    """Grow the markers in ``labels`` over ``mask`` in increasing ``rank`` (flat arrays), in place."""
    hk = np.empty(capacity, np.int64)  # binary min-heap on rank, holding flat indices
    hi = np.empty(capacity, np.int64)
    size = 0
    for i in range(labels.size):
        if labels[i] != 0 and mask[i]:
            # push
            c = size
            size += 1
            key = rank[i]
            while c > 0:
                parent = (c - 1) >> 1
                if hk[parent] <= key:
                    break
                hk[c] = hk[parent]
                hi[c] = hi[parent]
                c = parent
            hk[c] = key
            hi[c] = i
    n_off = offsets.size
    while size > 0:
        i = hi[0]
        size -= 1
        if size > 0:  # move the last entry down from the root
            key = hk[size]
            idx = hi[size]
            c = 0
            while True:
                child = 2 * c + 1
                if child >= size:
                    break
                if child + 1 < size and hk[child + 1] < hk[child]:
                    child += 1
                if hk[child] >= key:
                    break
                hk[c] = hk[child]
                hi[c] = hi[child]
                c = child
            hk[c] = key
            hi[c] = idx
        lab = labels[i]
        for k in range(n_off):
            j = i + offsets[k]
            if mask[j] and labels[j] == 0:
                labels[j] = lab
                c = size
                size += 1
                key = rank[j]
                while c > 0:
                    parent = (c - 1) >> 1
                    if hk[parent] <= key:
                        break
                    hk[c] = hk[parent]
                    hi[c] = hi[parent]
                    c = parent
                hk[c] = key
                hi[c] = j
