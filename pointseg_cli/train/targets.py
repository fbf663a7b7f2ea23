"""Label targets built from points: sparse point/background maps, the Gaussian objectness baseline,
and the object-centre maps the centre head is trained on.

Sparse maps use ``-1`` for unlabelled pixels, ``0`` for boundary background and ``k >= 1`` for
point pixels of class ``k`` (see :func:`pointseg_cli.train.losses.point_loss`).

Centre targets are ``(2, *spatial)`` float32 arrays: channel 0 the target map in ``[0, 1]``
(a Gaussian around each object's centre, maximum where they overlap), channel 1 the weight of each
pixel in the loss (1 known, 0 unknown). From points (:func:`point_center_target`) the Gaussian sits
on the click, its shape follows the object's extent estimated from the grown objectness
(:func:`grown_objects`), and only pixels inside those estimates or confidently background are
known; from instance masks (:func:`mask_center_target`) it sits on each instance's centroid and
every pixel is known. docs/training.md ("Centre head") compares the designs.
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


#: Grown objectness at or above this level counts as the seed's object when estimating its extent.
OBJECT_LEVEL = 0.5
#: Grown objectness below this level (or boundary background) counts as known background.
BACKGROUND_LEVEL = 0.1
#: Objects with fewer voxels than this in their estimate get the fixed σ instead of their own shape.
MIN_OBJECT_VOXELS = 8
#: Gaussians are drawn out to this many standard deviations per axis.
TRUNCATE = 3.0


def grown_objects(
    regions: np.ndarray,
    objectness: np.ndarray,
    background: np.ndarray | None = None,
    *,
    level: float = OBJECT_LEVEL,
    background_level: float = BACKGROUND_LEVEL,
) -> np.ndarray:
    """Per-seed object estimates from the grown objectness, and which pixels are known.

    Parameters
    ----------
    regions : np.ndarray ``(*spatial)`` int
        Region of each pixel (seed index + 1; 0 unreached), as the objectness engine writes them.
    objectness : np.ndarray ``(*spatial)`` float
        Grown objectness in [0, 1] (the object channel of the soft labels).
    background : np.ndarray ``(*spatial)`` bool, optional
        Boundary background (counted as known background).
    level, background_level : float
        Objectness at or above ``level`` is the region's object; below ``background_level`` it is
        background; in between it is unknown.

    Returns
    -------
    np.ndarray ``(*spatial)`` int32
        ``i + 1`` inside seed ``i``'s object estimate, 0 known background, −1 unknown.
    """
    obj = np.asarray(objectness, dtype=np.float32)
    regions = np.asarray(regions)
    out = np.full(regions.shape, -1, np.int32)
    out[obj < background_level] = 0
    if background is not None:
        out[np.asarray(background, bool)] = 0
    inside = (obj >= level) & (regions > 0)
    out[inside] = regions[inside]
    return out


def object_moments(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Voxel count ``(n,)``, centroid ``(n, D)`` and covariance ``(n, D, D)`` of labels ``1..n``.

    Coordinates are in voxels along the array axes; labels outside ``1..n`` are ignored; an
    empty label has count 0 and NaN centroid and covariance.
    """
    labels = np.asarray(labels)
    nd = labels.ndim
    flat = labels.ravel()
    idx = np.flatnonzero((flat > 0) & (flat <= n))
    lab = flat[idx].astype(np.int64) - 1
    coords = np.stack(np.unravel_index(idx, labels.shape), axis=1).astype(np.float64)
    counts = np.bincount(lab, minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.stack([np.bincount(lab, coords[:, a], minlength=n)[:n] for a in range(nd)], 1) / counts[:, None]
        centred = coords - means[lab]
        cov = np.empty((n, nd, nd))
        for a in range(nd):
            for b in range(a, nd):
                v = np.bincount(lab, centred[:, a] * centred[:, b], minlength=n)[:n] / counts
                cov[:, a, b] = cov[:, b, a] = v
    return counts, means, cov


def fixed_covariance(sigma: float, ndim: int, spacing: tuple[float, ...] | None = None) -> np.ndarray:
    """``(D, D)`` diagonal covariance of a Gaussian with ``sigma`` in pixels of the finest axis.

    With ``spacing`` (physical voxel size per axis) the Gaussian is round in physical space: an
    axis sampled twice as coarsely gets half the σ in voxels.
    """
    sp = np.ones(ndim) if spacing is None else np.asarray(spacing, dtype=np.float64)
    if sp.shape != (ndim,) or not np.all(sp > 0):
        raise ValueError(f"spacing must be {ndim} positive numbers; got {spacing}")
    return np.diag((float(sigma) * sp.min() / sp) ** 2)


def center_covariances(
    counts: np.ndarray,
    covs: np.ndarray,
    *,
    mode: str,
    sigma: float,
    scale: float,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Gaussian covariance ``(n, D, D)`` per object for the centre target.

    ``"fixed"``: :func:`fixed_covariance` for every object. ``"adaptive"``: ``scale²`` × the
    object's own voxel covariance (so the Gaussian is elongated, rotated and anisotropic like the
    object, whatever the voxel spacing), eigenvalues floored at 0.5² voxels; objects with fewer than
    :data:`MIN_OBJECT_VOXELS` voxels fall back to the fixed σ.
    """
    n, nd = covs.shape[0], covs.shape[-1]
    fixed = fixed_covariance(sigma, nd, spacing)
    out = np.broadcast_to(fixed, (n, nd, nd)).copy()
    if mode == "fixed" or n == 0:
        return out
    ok = (counts >= MIN_OBJECT_VOXELS) & np.all(np.isfinite(covs.reshape(n, -1)), axis=1)
    if ok.any():
        w, v = np.linalg.eigh(covs[ok] * scale * scale)
        w = np.maximum(w, 0.25)
        out[ok] = np.einsum("nij,nj,nkj->nik", v, w, v)
    return out


def render_gaussians(shape: tuple[int, ...], centers: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """``(*shape)`` float32: the maximum over objects of ``exp(−½ dᵀ Σ⁻¹ d)``, ``d`` = pixel − centre.

    Each Gaussian is drawn in the box of :data:`TRUNCATE` standard deviations per axis around its
    (possibly fractional) centre; it is 1 at a centre that falls on a pixel.
    """
    out = np.zeros(shape, np.float32)
    hi_lim = np.array(shape)
    for c, cov in zip(np.asarray(centers, np.float64), np.asarray(covs, np.float64), strict=True):
        half = TRUNCATE * np.sqrt(np.diag(cov))
        lo = np.maximum(np.floor(c - half).astype(np.int64), 0)
        hi = np.minimum(np.ceil(c + half).astype(np.int64) + 1, hi_lim)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        d = [(g - ci) for g, ci in zip(np.ogrid[box], c, strict=True)]
        inv = np.linalg.inv(cov)
        m = sum(inv[a, b] * d[a] * d[b] for a in range(len(d)) for b in range(len(d)))
        np.maximum(out[box], np.exp(-0.5 * m).astype(np.float32), out=out[box])
    return out


def point_center_target(
    points: np.ndarray,
    grown: np.ndarray,
    *,
    mode: str = "adaptive",
    sigma: float = 2.0,
    scale: float = 1.0,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Centre target and weight ``(2, *spatial)`` float32 from clicks and their grown objects.

    Parameters
    ----------
    points : np.ndarray ``(P, D)`` int
        Clicks; click ``i`` owns object estimate ``i + 1`` in ``grown``.
    grown : np.ndarray ``(*spatial)`` int
        :func:`grown_objects` of the image.
    mode, sigma, scale, spacing
        See :func:`center_covariances`.

    Returns
    -------
    np.ndarray ``(2, *spatial)`` float32
        Channel 0: a Gaussian on every click, shaped by its object; channel 1: 1 where the
        pixel is inside an object estimate, known background or within one σ of a click.
    """
    grown = np.asarray(grown)
    points = np.asarray(points, dtype=np.float64).reshape(-1, grown.ndim)
    counts, _, covs = object_moments(grown, len(points))
    covs = center_covariances(counts, covs, mode=mode, sigma=sigma, scale=scale, spacing=spacing)
    target = render_gaussians(grown.shape, points, covs)
    known = grown >= 0
    # the click's own neighbourhood is certain even where the growing left it unknown
    known |= target >= np.exp(-0.5)
    return np.stack([target, known.astype(np.float32)])


def mask_center_target(
    instances: np.ndarray,
    *,
    mode: str = "adaptive",
    sigma: float = 2.0,
    scale: float = 1.0,
    spacing: tuple[float, ...] | None = None,
) -> np.ndarray:
    """Centre target and weight ``(2, *spatial)`` float32 from an instance label image.

    Full supervision: a Gaussian on each instance's centroid (shaped by the instance itself in
    ``"adaptive"`` mode), every pixel known.
    """
    instances = np.asarray(instances)
    ids = np.unique(instances[instances > 0])
    lut = np.zeros(int(ids.max()) + 1 if ids.size else 1, np.int64)
    lut[ids] = np.arange(1, len(ids) + 1)
    labels = lut[np.where(instances > 0, instances, 0)]
    counts, means, covs = object_moments(labels, len(ids))
    covs = center_covariances(counts, covs, mode=mode, sigma=sigma, scale=scale, spacing=spacing)
    target = render_gaussians(instances.shape, means, covs)
    return np.stack([target, np.ones(instances.shape, np.float32)])
