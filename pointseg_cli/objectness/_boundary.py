"""Numba kernel for the boundary background of grown regions (flat, padded arrays).

``regions`` is int32 ``(P,)`` as left by :func:`pointseg_cli.objectness._kernels.grow_buckets`
(``-1`` on the sentinel border, so neighbour look-ups from an interior voxel need no bounds tests).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, _nrt=False)
def boundary_mask(regions, offsets, out):  # noqa: ANN001, ANN201
    """Mark voxels with a neighbour in another region (both ids > 0) as 1 in ``out`` (uint8).

    ``offsets`` must be symmetric (``-o`` with every ``o``): each pair of neighbours is looked at
    once, along its positive offset, and marks both voxels.
    """
    n_off = offsets.shape[0]
    for p in range(regions.shape[0]):
        r = regions[p]
        if r <= 0:
            continue
        for k in range(n_off):
            o = offsets[k]
            if o < 0:
                continue
            rq = regions[p + o]
            if rq > 0 and rq != r:
                out[p] = 1
                out[p + o] = 1
    return out
