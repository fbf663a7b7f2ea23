"""The per-component core of instance segmentation: peaks, distance map and seeded watershed.

Everything here looks only at voxels of one connected component at a time (see
:mod:`pointseg_cli.infer.instances` for why that makes streaming exact): :func:`find_peaks`
compares a voxel with voxels of its own component, :func:`distance_map` of a component is attained
inside its box grown by one voxel, and the flooding order is the rank of ``(-value, raster index)``,
so ties break the same way in any crop. :func:`segment_component` is what the streamed and the
in-memory paths run on each component; :mod:`pointseg_cli.infer.watershed_reference` holds the
plain whole-window formulation the tests compare it with.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    from pointseg_cli.infer.instances import InstanceConfig


def neighbourhood(ndim: int, connectivity: int) -> np.ndarray:
    return ndi.generate_binary_structure(ndim, min(connectivity, ndim))


def peak_radii(cfg: InstanceConfig, ndim: int) -> tuple[int, ...]:
    sp = np.asarray(cfg.spacing if cfg.spacing is not None else (1.0,) * ndim, np.float64)
    return tuple(int(np.floor(cfg.min_distance * sp.min() / s + 1e-9)) for s in sp)


def _exact_peaks(v: np.ndarray, comp: np.ndarray, which: np.ndarray, radii: tuple[int, ...]) -> np.ndarray:
    """``which`` voxels that are maxima among voxels of their own component in the box."""
    pad = [(r, r) for r in radii]
    vp = np.pad(v, pad, constant_values=-np.inf).ravel()
    shape = tuple(s + 2 * r for s, r in zip(v.shape, radii, strict=True))
    cp = np.pad(comp, pad, constant_values=0).ravel()
    coords = np.argwhere(which) + np.asarray(radii)
    flat = np.ravel_multi_index(coords.T, shape)
    strides = np.array([int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape))])
    alive = np.arange(flat.size)
    # nearest offsets first: most voxels fail next to themselves, and the survivors shrink fast
    offsets = sorted(itertools.product(*(range(-r, r + 1) for r in radii)), key=lambda o: sum(d * d for d in o))
    for off in offsets[1:]:
        f = flat[alive]
        q = f + int(np.dot(off, strides))
        alive = alive[~((cp[q] == cp[f]) & (vp[q] > vp[f]))]
        if alive.size == 0:
            break
    out = np.zeros(v.shape, bool)
    out[tuple(coords[alive].T - np.asarray(radii)[:, None])] = True
    return out


def _box(radii: Sequence[int]) -> tuple[int, ...]:
    return tuple(2 * int(r) + 1 for r in radii)


def find_peaks(values: np.ndarray, comp: np.ndarray, *, radii: Sequence[int], threshold: float) -> np.ndarray:
    """Voxels above ``threshold`` that hold the largest value of their component within a box.

    A voxel whose box holds no larger value at all is a peak (one maximum filter); only voxels
    with a larger value of *another* component in their box are compared voxel by voxel.

    Parameters
    ----------
    values : float array, any shape.
    comp : integer component ids, same shape (0 = not considered), or a boolean mask of one
        component.
    radii : half-widths of the box per axis.
    threshold : a peak's value must exceed it.

    Returns
    -------
    numpy.ndarray of bool
    """
    radii = tuple(int(r) for r in radii)
    fg = comp > 0
    v = np.array(values, np.float64)
    np.nan_to_num(v, copy=False, nan=-np.inf)
    v[~fg] = -np.inf
    which = fg & (v > threshold)
    size = _box(radii)
    peaks = which & (v >= ndi.maximum_filter(v, size=size, mode="constant", cval=-np.inf))
    if comp.dtype == bool:  # one component: nothing to compare across
        return peaks
    unsure = which & ~peaks
    if unsure.any():
        top = int(comp.max()) + 1  # a cval scipy holds exactly (it passes cval as a double)
        comp = comp.astype(np.int32 if top < 2**31 - 1 else np.int64, copy=False)
        mixed = unsure & ((ndi.maximum_filter(comp, size=size, mode="constant", cval=0) != comp)
                          | (ndi.minimum_filter(np.where(fg, comp, top), size=size, mode="constant", cval=top) != comp))
        if mixed.any():
            peaks |= _exact_peaks(v, comp, mixed, radii)
    return peaks


def flood_order(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Flooding order: rank of ``(-value, raster index)`` over ``mask`` (unique, crop-invariant)."""
    idx = np.flatnonzero(mask)
    v = np.nan_to_num(np.asarray(values).ravel()[idx], nan=-np.inf)
    order = np.argsort(-v, kind="stable")
    prio = np.zeros(mask.shape, np.float64)
    prio.ravel()[idx[order]] = np.arange(1, idx.size + 1, dtype=np.float64)
    return prio


def distance_map(cls: np.ndarray, c: int, spacing: Sequence[float] | None) -> np.ndarray:
    """Distance of each voxel of class ``c`` to the nearest other voxel (rounded to 1e-9), by scipy."""
    d = ndi.distance_transform_edt(cls == c, sampling=spacing)
    # equal distances reached through different nearest voxels may differ in the last bit
    return np.round(d, 9, out=d)


def mask_distance(mask: np.ndarray, spacing: Sequence[float] | None) -> np.ndarray:
    """Distance of each voxel of ``mask`` to the nearest voxel outside it (rounded to 1e-9).

    For one connected component of a class this equals the distance to the nearest voxel of
    another class: the nearest voxel outside a component is never of the component's class.
    Computed by :func:`pointseg_cli.infer._ws_kernels.sq_distance_3d` (the terms and order of
    :func:`scipy.ndimage.distance_transform_edt`, a fraction of its time and memory).
    """
    from pointseg_cli.infer._ws_kernels import sq_distance_3d

    sp = tuple(float(v) for v in spacing) if spacing is not None else (1.0,) * mask.ndim
    d = np.where(mask, np.inf, 0.0)
    d3 = d.reshape((1,) * (3 - mask.ndim) + mask.shape)
    sq_distance_3d(d3, *((1.0,) * (3 - mask.ndim) + sp))
    np.sqrt(d, out=d)
    # equal distances reached through different nearest voxels may differ in the last bit
    return np.round(d, 9, out=d)


def seeded_flood(values: np.ndarray, markers: np.ndarray, mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """Seeded watershed of ``mask`` from ``markers``, highest ``values`` first (ties: raster order).

    The result of ``skimage.segmentation.watershed(flood_order(values, mask), markers, mask=mask,
    connectivity=structure)``, by :func:`pointseg_cli.infer._ws_kernels.flood`. Returns int32 labels.
    """
    from pointseg_cli.infer._ws_kernels import flood

    mp = np.pad(mask, 1)
    idx = np.flatnonzero(mp)
    vals = np.nan_to_num(np.asarray(values)[mask], nan=-np.inf)
    order = np.argsort(-vals, kind="stable")
    del vals
    rank = np.zeros(mp.shape, np.int32 if idx.size < 2**31 - 1 else np.int64)
    rank.ravel()[idx[order]] = np.arange(1, idx.size + 1, dtype=rank.dtype)
    del order
    labels = np.pad(np.where(mask, markers, 0).astype(np.int32), 1)
    strides = np.array([int(np.prod(mp.shape[i + 1:], dtype=np.int64)) for i in range(mp.ndim)], np.int64)
    centre = np.array(structure.shape) // 2
    offsets = np.array([int(np.dot(o - centre, strides)) for o in np.argwhere(structure) if np.any(o != centre)],
                       np.int64)
    flood(rank.ravel(), labels.ravel(), mp.ravel().view(np.uint8), offsets, int(idx.size))
    return labels[(slice(1, -1),) * mask.ndim]


def segment_component(mask: np.ndarray, values: np.ndarray | None, *, config: InstanceConfig,
                      radii: Sequence[int], structure: np.ndarray) -> tuple[np.ndarray | None, int]:
    """Instances of one connected component.

    Parameters
    ----------
    mask : bool, the component's bounding box grown by one voxel on every side that is not the
        volume's edge (``distance`` needs that ring), True on the component.
    values : centre map over the same box (``centers``), ignored for ``distance``.
    config : the method and its settings.
    radii, structure : :func:`peak_radii` and :func:`neighbourhood` of ``config``.

    Returns
    -------
    ids : ``None`` when the component is one instance, else int32 ids 1..n over the box (0 off it).
    n : the number of instances.
    """
    if config.method == "distance":
        v = mask_distance(mask, config.spacing)
    else:
        v = np.where(mask, np.nan_to_num(np.asarray(values), nan=-np.inf), -np.inf)
    size = _box(radii)
    peaks = mask & (v > np.float64(config.peak_threshold))
    if size != (1,) * mask.ndim:
        peaks &= v >= ndi.maximum_filter(v, size=size, mode="constant", cval=-np.inf)
    markers, n = ndi.label(peaks, structure=structure)
    if n <= 1:  # no marker, or one that floods the whole (connected) component
        return None, 1
    del peaks
    return seeded_flood(v, markers, mask, structure), int(n)


def segment_many(comp: np.ndarray, classes_of: np.ndarray, values: np.ndarray | None, *, config: InstanceConfig,
                 radii: Sequence[int], structure: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`segment_component` of several components at once (many small ones cost one pass).

    Parameters
    ----------
    comp : component numbers over a box that holds each of them with its one-voxel ring (0
        elsewhere; other components must be 0 too).
    classes_of : class of each component number (``classes_of[0] == 0``).
    values : centre map over the box (``centers``), ignored for ``distance``.
    config, radii, structure : as for :func:`segment_component`.

    Returns
    -------
    ids : int32 over the box: instance labels (unique over the box) on components with two
        markers or more, 0 elsewhere.
    numbers : the component numbers present.
    markers : the number of markers of each of them (0 and 1 mean one instance).
    """
    fg = comp > 0
    numbers = np.unique(comp[fg])
    cls = classes_of[comp]
    present = np.unique(classes_of[numbers])
    if config.method == "distance":
        v = np.zeros(comp.shape, np.float64)
        for c in present:
            m = cls == c
            v[m] = mask_distance(m, config.spacing)[m]
    else:
        v = np.where(fg, np.nan_to_num(np.asarray(values), nan=-np.inf), -np.inf)
    peaks = find_peaks(v, comp, radii=radii, threshold=config.peak_threshold)
    markers = np.zeros(comp.shape, np.int32)
    n = 0
    for c in present:  # per class: plateaus of touching components of two classes stay apart
        lab, k = ndi.label(peaks & (cls == c), structure=structure)
        np.copyto(markers, (lab + n).astype(np.int32), where=lab > 0)
        n += k
    idx = np.flatnonzero(markers)
    owner = np.zeros(n + 1, np.int64)
    owner[markers.ravel()[idx]] = comp.ravel()[idx]
    counts = np.bincount(np.searchsorted(numbers, owner[1:]), minlength=numbers.size) if n else \
        np.zeros(numbers.size, np.int64)
    ids = np.zeros(comp.shape, np.int32)
    multi = numbers[counts >= 2]
    if multi.size:
        sel = np.isin(comp, multi)
        for c in np.unique(classes_of[multi]):
            mask = sel & (cls == c)
            ws = seeded_flood(v, markers, mask, structure)
            np.copyto(ids, ws, where=mask)
    return ids, numbers, counts
