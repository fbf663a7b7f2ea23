"""Numba kernel that turns the grown, padded regions into the unpadded outputs in one pass.

``regions`` (int32) is ``(P,)`` as left by :func:`pointseg_cli.objectness._kernels.grow_buckets`:
the padded grid raveled, ``-1`` on the one-voxel sentinel border, so neighbour look-ups from an
interior voxel need no bounds tests.
"""

from __future__ import annotations

from numba import njit


@njit(cache=True, _nrt=False)
def interior_outputs(regions, offsets, shape, pad_z, regions_out, background_out):  # noqa: ANN001, ANN201
    """Fill the raveled outputs of the interior voxels in C order.

    ``shape`` is the unpadded ``(Z, Y, X)`` (``Z = 1`` and ``pad_z = 0`` for a 2-D image, else
    ``pad_z = 1``). ``regions_out`` (int32) gets the region ids, ``background_out`` (bool) whether
    a neighbour along ``offsets`` lies in another region (both ids > 0).
    """
    nz, ny, nx = shape[0], shape[1], shape[2]
    sy = nx + 2
    sz = (ny + 2) * sy
    n_off = offsets.shape[0]
    i = 0
    for z in range(nz):
        for y in range(ny):
            p = (z + pad_z) * sz + (y + 1) * sy + 1
            for _ in range(nx):
                r = regions[p]
                regions_out[i] = r
                edge = False
                if r > 0:
                    for k in range(n_off):
                        rq = regions[p + offsets[k]]
                        if rq > 0 and rq != r:
                            edge = True
                            break
                background_out[i] = edge
                p += 1
                i += 1
