"""Seeded region growing with objectness (Li, Dey et al., ISBI 2021) — the validating public API.

Each seed grows its own region over the pixel grid. The distance of a pixel to its seed is
accumulated along the growing tree, ``d(seed) = 0``, with one of two step costs (``cost``):

``"parent"`` (issue 3's formula)
    ``d(p) = d(par(p)) + s_k * sum_c (I[p, c] - I[par(p), c])**2`` — difference to the parent.
``"seed"`` (the product brief's "squared intensity difference from the seed"; the default)
    ``d(p) = d(par(p)) + s_k * sum_c (I[p, c] - R[c])**2`` where ``R`` is the seed's reference
    intensity: the mean over the seed's 3^ndim neighbourhood (clipped at the image border), which
    is less sensitive to a noisy seed pixel than the seed pixel alone.

``s_k`` is the step weight of the neighbour offset (1 without ``spacing``). Objectness is
``exp(-w * d)``; pixels with a neighbour in another region form the boundary background. On
textured objects over a flat background (fluorescent nuclei) the parent cost grows faster inside
the objects than across a smooth object edge into the background, so objectness can end up higher
outside the objects than inside; the seed cost charges every background pixel its full contrast
to the seed (see docs/objectness.md for measurements).

Two modes:

``"paper"``
    A pixel is labelled and gets its distance when it is first pushed (as the paper describes);
    it is never revisited. Each pixel enters the queue once, so memory is fixed and small.
``"geodesic"``
    Exact multi-source Dijkstra: a pixel is relabelled whenever a strictly shorter path is found,
    so ``d`` is the true minimal path cost and each pixel belongs to its geodesically nearest
    seed. Paper-mode distances are upper bounds of the geodesic ones.

Spacing: with ``spacing=(sz, sy, sx)`` the cost of a step is multiplied by
``max(spacing of the axes the step moves along) / min(spacing)``, so an intensity change across
a coarse axis (e.g. z in a confocal stack) costs proportionally more than the same change within
a finely sampled plane. Isotropic spacing gives the same result as no spacing.

This module validates and pads the inputs; :mod:`pointseg_cli.objectness.buckets` drives the
bucket-queue kernel that does the growing.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import ConfigError, ImageFormatError, PointsError, check_choice
from pointseg_cli.objectness import _kernels
from pointseg_cli.objectness._outputs import interior_outputs
from pointseg_cli.objectness.buckets import bucket_count as _n_buckets
from pointseg_cli.objectness.buckets import grow_regions
from pointseg_cli.objectness.buckets import inverse_bucket_width as _inverse_bucket_width

log = logging.getLogger(__name__)

MODES = ("paper", "geodesic")
COSTS = ("seed", "parent")
#: Half-width of the box averaged for a seed's reference intensity (0 = the seed pixel alone).
SEED_REFERENCE_RADIUS = 1


@dataclass(frozen=True)
class ObjectnessResult:
    """Output of :func:`compute_objectness`.

    Attributes
    ----------
    regions : np.ndarray
        int32, spatial shape ``(Y, X)`` or ``(Z, Y, X)``; seed ``i`` -> region ``i + 1``, 0 unreached.
    distance : np.ndarray
        float32 cumulative distance ``d`` to the region's seed (``inf`` where unreached).
    objectness : np.ndarray
        float32 ``exp(-w * d)`` (0 where unreached).
    background : np.ndarray
        bool boundary mask: a neighbour belongs to another region.
    classes : np.ndarray
        int32 ``(N,)`` object-class id (>= 1) of each seed.
    w : float
        The objectness decay used.
    """

    regions: np.ndarray
    distance: np.ndarray
    objectness: np.ndarray
    background: np.ndarray
    classes: np.ndarray
    w: float

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.regions, self.distance, self.objectness, self.background)}
        if len(shapes) != 1:
            raise ValueError(f"ObjectnessResult arrays must share one spatial shape; got {sorted(shapes)}")

    def class_map(self) -> np.ndarray:
        """int32 spatial map of each pixel's class id (0 where unreached)."""
        lut = np.concatenate([np.zeros(1, np.int32), self.classes.astype(np.int32)])
        return lut[self.regions]

    def soft_labels(self, n_classes: int) -> np.ndarray:
        """Soft labels ``P`` of shape ``(K+1, *spatial)``, float32.

        Channel 0 (background) is ``1 - Obj``, the channel of the pixel's seed class is ``Obj``,
        the others are 0. Channels sum to 1 everywhere.

        Parameters
        ----------
        n_classes : int
            Number of object classes ``K`` (at least the largest seed class id).
        """
        top = int(self.classes.max()) if self.classes.size else 0
        if n_classes < max(top, 1):
            raise ConfigError(f"n_classes must be >= {max(top, 1)} (largest seed class id); got {n_classes}")
        out = np.zeros((n_classes + 1, *self.regions.shape), np.float32)
        np.subtract(1.0, self.objectness, out=out[0])
        cmap = self.class_map()
        for k in range(1, n_classes + 1):
            sel = cmap == k
            out[k][sel] = self.objectness[sel]
        return out


def neighbour_offsets(ndim: int, connectivity: int) -> list[tuple[int, ...]]:
    """Neighbour displacements in visiting order.

    Face neighbours come first, axis 0 first and ``-1`` before ``+1``; with ``connectivity > 1``
    the remaining neighbours (at most ``connectivity`` non-zero components) follow in
    lexicographic order of ``(-1, 0, 1)`` products.
    """
    if not 1 <= connectivity <= ndim:
        raise ConfigError(f"connectivity must be between 1 and {ndim} for {ndim}-D images; got {connectivity}")
    face = []
    for axis in range(ndim):
        for sign in (-1, 1):
            d = [0] * ndim
            d[axis] = sign
            face.append(tuple(d))
    rest = [
        d
        for d in itertools.product((-1, 0, 1), repeat=ndim)
        if 2 <= sum(v != 0 for v in d) <= connectivity
    ]
    return face + rest


def step_weights(offsets: Sequence[tuple[int, ...]], spacing: Sequence[float] | None) -> np.ndarray:
    """Cost multiplier of each offset: ``max(spacing of moved axes) / min(spacing)`` (1 without spacing)."""
    if spacing is None:
        return np.ones(len(offsets), np.float64)
    sp = np.asarray(spacing, np.float64)
    return np.array([sp[np.flatnonzero(d)].max() / sp.min() for d in offsets], np.float64)


def _check_inputs(
    image: np.ndarray, seeds: np.ndarray, classes: np.ndarray, channel_axis: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and return ``(image (*spatial, C) float32, seeds (N, ndim) int64, classes (N,) int32)``."""
    image = np.asarray(image)
    if channel_axis is not None:
        if not -image.ndim <= channel_axis < image.ndim:
            raise ImageFormatError(f"channel_axis {channel_axis} is out of range for an image of shape {image.shape}")
        image = np.moveaxis(image, channel_axis, -1)
    else:
        image = image[..., None]
    ndim = image.ndim - 1
    if ndim not in (2, 3):
        raise ImageFormatError(
            f"expected a 2-D or 3-D image (plus optional channel axis); got spatial shape {image.shape[:-1]}"
        )
    if image.dtype.kind not in "uifb":
        raise ImageFormatError(f"expected a numeric image; got dtype {image.dtype}")
    image = image.astype(np.float32, copy=False)
    if not np.isfinite(image).all():
        raise ImageFormatError("image contains NaN or infinite values; expected finite intensities")
    seeds = np.asarray(seeds)
    if seeds.size == 0:
        seeds = seeds.reshape(0, ndim)
    if seeds.ndim != 2 or seeds.shape[1] != ndim:
        raise PointsError(f"expected seeds of shape (N, {ndim}) for a {ndim}-D image; got {seeds.shape}")
    if seeds.dtype.kind == "f":
        if not np.isfinite(seeds).all():
            raise PointsError("seed coordinates contain NaN or infinite values")
        seeds = np.rint(seeds)
    seeds = seeds.astype(np.int64)
    shape = np.array(image.shape[:-1])
    outside = np.flatnonzero(((seeds < 0) | (seeds >= shape)).any(axis=1))
    if outside.size:
        i = outside[0]
        raise PointsError(
            f"{outside.size} seed(s) lie outside the image of shape {tuple(shape)}; "
            f"first: seed {i} at {tuple(seeds[i].tolist())}"
        )
    uniq, first, counts = np.unique(seeds, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        j = np.flatnonzero(counts > 1)[0]
        raise PointsError(
            f"expected one seed per pixel; {int((counts > 1).sum())} pixel(s) hold several seeds, "
            f"first at {tuple(uniq[j].tolist())} (seed {first[j]})"
        )
    classes = np.asarray(classes)
    if classes.shape != (seeds.shape[0],):
        raise PointsError(f"expected one class id per seed, shape ({seeds.shape[0]},); got {classes.shape}")
    if classes.size and (classes.dtype.kind not in "ui" or classes.min() < 1):
        raise PointsError(f"expected integer object-class ids >= 1; got dtype {classes.dtype}, min {classes.min()}")
    return image, seeds, classes.astype(np.int32)


def seed_reference(image: np.ndarray, seeds: np.ndarray, *, radius: int = SEED_REFERENCE_RADIUS) -> np.ndarray:
    """Reference intensity of each seed: mean over its ``(2 radius + 1)^ndim`` box, clipped at the border.

    Parameters
    ----------
    image : np.ndarray
        ``(*spatial, C)`` intensities (channels last).
    seeds : np.ndarray
        int ``(N, ndim)`` pixel coordinates inside the image.
    radius : int
        Box half-width; 0 gives the seed pixel itself.

    Returns
    -------
    np.ndarray
        float64 ``(N, C)``. Box pixels are summed in C order of the box offsets, then divided by
        their count (the reference oracle sums in the same order).
    """
    spatial = np.array(image.shape[:-1])
    acc = np.zeros((seeds.shape[0], image.shape[-1]), np.float64)
    count = np.zeros(seeds.shape[0], np.float64)
    for off in itertools.product(range(-radius, radius + 1), repeat=len(spatial)):
        q = seeds + np.array(off, np.int64)
        ok = ((q >= 0) & (q < spatial)).all(axis=1)
        acc[ok] += image[tuple(q[ok].T)].astype(np.float64)
        count[ok] += 1.0
    return acc / count[:, None]


def compute_objectness(
    image: np.ndarray,
    seeds: np.ndarray,
    classes: np.ndarray,
    *,
    w: float,
    channel_axis: int | None = None,
    connectivity: int = 1,
    mode: str = "paper",
    spacing: Sequence[float] | None = None,
    cost: str = "seed",
) -> ObjectnessResult:
    """Grow one region per seed and compute objectness ``exp(-w * d)``.

    Intensities are used as given: normalise them first (see
    :func:`pointseg_cli.objectness.objectness_for_image`, which also preprocesses) so that one
    ``w`` means the same across images.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)`` or ``(Z, Y, X)``, with an extra channel axis at ``channel_axis`` if given.
    seeds : np.ndarray
        int ``(N, ndim)`` pixel coordinates (floats are rounded); one seed per pixel.
    classes : np.ndarray
        int ``(N,)`` object-class ids >= 1.
    w : float
        Objectness decay, > 0.
    channel_axis : int, optional
        Axis of ``image`` holding channels; costs sum squared differences over channels.
    connectivity : int
        1 for face neighbours (4 in 2-D, 6 in 3-D) up to ``ndim`` for full (8 / 26).
    mode : {"paper", "geodesic"}
        See the module docstring.
    spacing : sequence of float, optional
        Physical voxel size per spatial axis; see the module docstring.
    cost : {"seed", "parent"}
        Step cost: squared difference to the seed's reference intensity (default) or to the
        parent pixel (issue 3's formula exactly); see the module docstring.

    Returns
    -------
    ObjectnessResult
    """
    check_choice("mode", mode, MODES)
    check_choice("cost", cost, COSTS)
    if not (np.isfinite(w) and w > 0):
        raise ConfigError(f"w must be a positive finite number; got {w}")
    img, seeds, classes = _check_inputs(image, seeds, classes, channel_axis)
    spatial = img.shape[:-1]
    ndim = len(spatial)
    if spacing is not None:
        spacing = tuple(float(s) for s in spacing)
        if len(spacing) != ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ConfigError(f"spacing must be {ndim} positive numbers (one per spatial axis); got {spacing}")
    offs = neighbour_offsets(ndim, connectivity)
    weights = step_weights(offs, spacing)

    padded_shape = tuple(s + 2 for s in spatial)
    n_pad = int(np.prod(padded_shape))
    interior = tuple(slice(1, -1) for _ in spatial)
    strides = np.array([int(np.prod(padded_shape[a + 1 :])) for a in range(ndim)], np.int64)
    flat_offsets = np.array([int(np.dot(d, strides)) for d in offs], np.int64)
    flat_seeds = (seeds + 1) @ strides

    if cost == "seed":
        refs, cost_mode = seed_reference(img, seeds, radius=SEED_REFERENCE_RADIUS), _kernels.COST_SEED
    else:
        refs, cost_mode = np.zeros((0, img.shape[-1]), np.float64), _kernels.COST_PARENT
    pimg = np.zeros((*padded_shape, img.shape[-1]), np.float32)
    pimg[interior] = img
    # the largest possible step cost bounds every distance by n_vox * max_step (it keeps the
    # quantised distance inside int64); seed references lie within [lo, hi] too
    axes = tuple(range(ndim))
    span = (img.max(axis=axes).astype(np.float64) - img.min(axis=axes)) if img.size else np.zeros(1)
    max_step = float(weights.max()) * float((span**2).sum())
    del img
    pimg = pimg.reshape(n_pad, -1)
    regions = np.full(padded_shape, -1, np.int32)
    regions[interior] = 0
    regions = regions.reshape(-1)
    dist = np.full(n_pad, np.inf, np.float64)
    labels = np.arange(1, seeds.shape[0] + 1, dtype=np.int32)
    n_buckets = _n_buckets(int(np.prod(spatial)))
    inv_delta = _inverse_bucket_width(pimg, regions, flat_offsets, weights, refs, cost_mode, spatial=spatial,
                                      strides=strides, max_step=max_step, n_buckets=n_buckets)
    grow_regions(pimg, regions, dist, flat_offsets, weights, flat_seeds, labels, refs, cost_mode,
                 geodesic=mode == "geodesic", inv_delta=inv_delta, n_buckets=n_buckets)
    del pimg

    regions_out = np.empty(spatial, np.int32)
    background = np.empty(spatial, bool)
    shape3 = np.array(((1,) * (3 - ndim)) + tuple(spatial), np.int64)
    interior_outputs(regions, flat_offsets, shape3, int(ndim == 3), regions_out.reshape(-1), background.reshape(-1))
    del regions
    distance = dist.reshape(padded_shape)[interior].astype(np.float32)
    del dist
    objectness = np.exp(np.float32(-w) * distance)
    return ObjectnessResult(
        regions=regions_out,
        distance=distance,
        objectness=objectness,
        background=background,
        classes=classes,
        w=float(w),
    )
