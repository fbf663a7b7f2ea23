"""The per-window core of instance segmentation: component-local peaks and seeded watershed.

Everything here looks only at voxels of one connected component at a time (see
:mod:`pointseg_cli.infer.instances` for why that makes streaming exact): :func:`find_peaks`
compares a voxel with voxels of its own component, :func:`distance_map` is attained inside a
component's box grown by one voxel, and the flooding order of :func:`segment_components` is the
rank of ``(-value, raster index)``, so ties break the same way in any crop.
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


def find_peaks(values: np.ndarray, comp: np.ndarray, *, radii: Sequence[int], threshold: float) -> np.ndarray:
    """Voxels above ``threshold`` that hold the largest value of their component within a box.

    Parameters
    ----------
    values : float array, any shape.
    comp : integer component ids, same shape (0 = not considered).
    radii : half-widths of the box per axis.
    threshold : a peak's value must exceed it.

    Returns
    -------
    numpy.ndarray of bool
    """
    radii = tuple(int(r) for r in radii)
    fg = comp > 0
    v = np.where(fg, np.nan_to_num(np.asarray(values, np.float64), nan=-np.inf), -np.inf)
    return _exact_peaks(v, comp.astype(np.int64, copy=False), fg & (v > threshold), radii)


def flood_order(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Flooding order: rank of ``(-value, raster index)`` over ``mask`` (unique, crop-invariant)."""
    idx = np.flatnonzero(mask)
    v = np.nan_to_num(np.asarray(values, np.float64).ravel()[idx], nan=-np.inf)
    order = np.argsort(-v, kind="stable")
    prio = np.zeros(mask.shape, np.float64)
    prio.ravel()[idx[order]] = np.arange(1, idx.size + 1, dtype=np.float64)
    return prio


def distance_map(cls: np.ndarray, c: int, spacing: Sequence[float] | None) -> np.ndarray:
    """Distance of each voxel of class ``c`` to the nearest other voxel (rounded to 1e-9)."""
    d = ndi.distance_transform_edt(cls == c, sampling=spacing)
    # equal distances reached through different nearest voxels may differ in the last bit
    return np.round(d, 9)


def segment_components(cls: np.ndarray, comp: np.ndarray, values: np.ndarray | None, *,
                       config: InstanceConfig, markers_out: list[np.ndarray] | None = None) -> tuple[np.ndarray, int]:
    """Instances of every component present in ``comp`` (one window of the volume).

    Parameters
    ----------
    cls : class ids of the window ``(Z, Y, X)`` or ``(Y, X)``; every voxel, not only ``comp``'s.
    comp : component numbers to segment (0 = leave alone); each must lie wholly in the window,
        with one voxel to spare on each side that is not the volume's edge (for ``distance``).
    values : centre map of the window (``centers`` only).
    config : the method and its settings.
    markers_out : if given, the boolean marker mask is appended to it.

    Returns
    -------
    ids : int64, window shape, instance ids 1..n (0 elsewhere), numbered in no particular order.
    n : the number of instances.
    """
    out = np.zeros(comp.shape, np.int64)
    if config.method == "components":
        present, inv = np.unique(comp, return_inverse=True)
        inv = inv.reshape(comp.shape)
        start = 1 if present[0] == 0 else 0
        return np.where(comp > 0, inv + (1 - start), 0), int(present.size - start)
    from skimage.segmentation import watershed

    structure = neighbourhood(comp.ndim, config.connectivity)
    radii = peak_radii(config, comp.ndim)
    sel = comp > 0
    classes = np.unique(cls[sel])
    if config.method == "distance":
        vals = np.zeros(comp.shape, np.float64)
        for c in classes:
            in_c = cls == c
            vals[in_c] = distance_map(cls, int(c), config.spacing)[in_c]
    else:
        vals = values
    all_peaks = find_peaks(vals, comp, radii=radii, threshold=config.peak_threshold)  # one component at a time
    n = 0
    for c in classes:
        mask = sel & (cls == c)
        comp_c = np.where(mask, comp, 0)
        markers, nm = ndi.label(all_peaks & mask, structure=structure)
        ws = watershed(flood_order(vals, mask), markers, mask=mask, connectivity=structure)
        lost = mask & (ws == 0)  # components without a marker: one instance each
        if lost.any():
            _, inv = np.unique(comp_c[lost], return_inverse=True)
            ws[lost] = nm + 1 + inv.ravel()
            nm = int(ws.max())
        out[mask] = ws[mask] + n
        n += nm
    if markers_out is not None:
        markers_out.append(all_peaks)
    return out, n
