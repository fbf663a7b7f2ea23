"""Label targets built from points: sparse point/background maps and the Gaussian objectness baseline.

Sparse maps use ``-1`` for unlabelled pixels, ``0`` for boundary background and ``k >= 1`` for
point pixels of class ``k`` (see :func:`pointseg_cli.train.losses.point_loss`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def ball_offsets(radius: int, ndim: int) -> np.ndarray:
    """Integer offsets ``(M, ndim)`` within Euclidean distance ``radius`` of the origin (origin first)."""
    r = int(radius)
    grids = np.meshgrid(*([np.arange(-r, r + 1)] * ndim), indexing="ij")
    offs = np.stack([g.ravel() for g in grids], axis=1)
    offs = offs[(offs**2).sum(1) <= r * r]
    order = np.argsort((offs**2).sum(1), kind="stable")
    return offs[order].astype(np.int64)


def rasterize_points(
    sparse: np.ndarray, points: np.ndarray, classes: np.ndarray, *, radius: int = 0, spatial_ndim: int | None = None
) -> np.ndarray:
    """Write point labels (with a ball of ``radius`` pixels) into ``sparse`` in place and return it.

    Parameters
    ----------
    sparse : np.ndarray ``(*spatial)`` or ``(N, *spatial)`` int
        Target map.
    points : np.ndarray ``(P, sparse.ndim)`` int
        Pixel coordinates, one column per axis of ``sparse`` (a batch index column first when
        ``sparse`` is batched). Points outside the map are dropped.
    classes : np.ndarray ``(P,)`` int
        Class id (>= 1) of each point.
    radius : int
        0 labels just the clicked pixel.
    spatial_ndim : int, optional
        Number of trailing axes the ball extends over (default: all axes of ``sparse``).
    """
    points = np.asarray(points, dtype=np.int64).reshape(-1, sparse.ndim)
    if points.shape[0] == 0:
        return sparse
    nd = sparse.ndim if spatial_ndim is None else spatial_ndim
    offs = ball_offsets(radius, nd)
    if nd < sparse.ndim:
        offs = np.concatenate([np.zeros((len(offs), sparse.ndim - nd), np.int64), offs], axis=1)
    coords = (points[:, None, :] + offs[None]).reshape(-1, sparse.ndim)
    labels = np.repeat(np.asarray(classes), len(offs))
    ring = np.tile(np.arange(len(offs)), len(points))
    inside = np.all((coords >= 0) & (coords < np.array(sparse.shape)), axis=1)
    coords, labels, ring = coords[inside], labels[inside], ring[inside]
    # Where balls overlap the nearest point wins: write the farthest offsets first.
    order = np.argsort(-ring, kind="stable")
    sparse[tuple(coords[order].T)] = labels[order]
    return sparse


def gaussian_soft_labels(
    shape: tuple[int, ...], points: np.ndarray, classes: np.ndarray, *, n_classes: int, sigma: float
) -> np.ndarray:
    """The "Gauss Obj" baseline: Obj(p) = max_s exp(−|p − s|² / 2σ²) around each point.

    Returns soft labels ``(K + 1, *shape)`` float32 laid out like the objectness engine's:
    channel 0 = 1 − Obj, the channel of the nearest point's class = Obj, others 0. Each point
    only affects pixels within 3σ.
    """
    obj = np.zeros(shape, np.float32)
    owner = np.zeros(shape, np.int32)
    r = max(1, int(np.ceil(3 * sigma)))
    points = np.asarray(points, dtype=np.int64)
    for p, c in zip(points, np.asarray(classes), strict=True):
        lo = np.maximum(p - r, 0)
        hi = np.minimum(p + r + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grids = np.ogrid[box]
        d2 = sum((g - pi).astype(np.float32) ** 2 for g, pi in zip(grids, p, strict=True))
        g = np.exp(-d2 / np.float32(2 * sigma * sigma))
        better = g > obj[box]
        obj[box] = np.where(better, g, obj[box])
        owner[box] = np.where(better, c, owner[box])
    out = np.zeros((n_classes + 1, *shape), np.float32)
    out[0] = 1.0 - obj
    for k in range(1, n_classes + 1):
        out[k] = np.where(owner == k, obj, 0.0)
    return out
