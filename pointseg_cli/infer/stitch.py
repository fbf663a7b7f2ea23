"""Connected components of a class map that is read slab by slab, exact across slab faces.

Each slab (a run of planes along the first axis) is labelled on its own, one class at a time,
with :func:`scipy.ndimage.label`; these *provisional* ids are numbered consecutively over the
whole volume. Two provisional ids that touch across a slab face (same class, neighbours under the
chosen connectivity) belong to one component; the pairs are collected face by face and resolved
once at the end with a graph connected-components pass. The result is the same partition as
labelling the whole volume at once.

Nothing but small per-component tables is kept: :meth:`ComponentIndex.components_in` recomputes
the provisional ids of any planes (labelling is deterministic) and maps them to component
numbers, so later passes can read windows of the volume without a temporary label file.

Components are numbered 1..N in raster order of their first voxel, the convention of
:func:`scipy.ndimage.label`, so the numbering does not depend on the slab size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

#: ``read(start, stop)`` -> planes ``start:stop`` of the class map, shape ``(stop - start, *rest)``.
PlaneReader = Callable[[int, int], np.ndarray]


def label_block(block: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label each non-zero class of ``block`` separately; ids 1..n over all classes.

    Returns
    -------
    labels : numpy.ndarray, ``block.shape``, int64 (0 = background).
    classes : numpy.ndarray, (n,), the class id of each label 1..n.
    """
    present = np.flatnonzero(np.bincount(block.ravel(), minlength=1))
    present = present[present > 0]
    out: np.ndarray | None = None
    classes: list[np.ndarray] = []
    n = 0
    for c in present:
        mask = block == c
        lab, k = ndi.label(mask, structure=structure, output=np.int64)
        if out is None:
            out = lab
        else:
            lab += n
            np.copyto(out, lab, where=mask)
        classes.append(np.full(k, c, dtype=np.int64))
        n += k
    if out is None:
        out = np.zeros(block.shape, dtype=np.int64)
    return out, (np.concatenate(classes) if classes else np.zeros(0, np.int64))


def _first_indices(flat_labels: np.ndarray, n: int) -> np.ndarray:
    """Flat index of the first voxel of each label 1..n (labels numbered by first appearance per class)."""
    idx = np.flatnonzero(flat_labels)
    ids, first = np.unique(flat_labels[idx], return_index=True)
    out = np.full(n, -1, dtype=np.int64)
    out[ids - 1] = idx[first]
    return out


def _face_pairs(prev_lab: np.ndarray, prev_cls: np.ndarray, lab: np.ndarray, cls: np.ndarray,
                structure: np.ndarray) -> np.ndarray:
    """Pairs of provisional ids that touch across a face: plane ``prev`` above plane ``cur``."""
    pairs = []
    centre = np.array(structure.shape[1:]) // 2
    for off in np.argwhere(structure[2]):  # neighbours one plane further along axis 0
        d = off - centre
        src = tuple(slice(max(0, -di), s - max(0, di)) for di, s in zip(d, lab.shape, strict=True))
        dst = tuple(slice(max(0, di), s - max(0, -di)) for di, s in zip(d, lab.shape, strict=True))
        a, b = prev_lab[src], lab[dst]
        ok = (a > 0) & (b > 0) & (prev_cls[src] == cls[dst])
        if ok.any():
            pairs.append(np.stack([a[ok], b[ok]], axis=1))
    if not pairs:
        return np.zeros((0, 2), np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


@dataclass
class ComponentIndex:
    """Per-component tables of a class map scanned slab by slab.

    Attributes
    ----------
    shape : spatial shape of the class map.
    slabs : plane boundaries used for the scan (``slabs[i]:slabs[i+1]``).
    offsets : provisional id offset of each slab.
    lut : provisional id -> component number (1..N), ``lut[0] = 0``.
    classes : (N,) class id of each component.
    first : (N,) flat index of each component's first voxel (increasing).
    lo, hi : (N, ndim) bounding box, ``hi`` exclusive.
    voxels : (N,) voxel count.
    """

    shape: tuple[int, ...]
    structure: np.ndarray
    slabs: np.ndarray
    offsets: np.ndarray
    lut: np.ndarray
    classes: np.ndarray
    first: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    voxels: np.ndarray

    @property
    def n(self) -> int:
        return int(self.classes.size)

    def components_in(self, read: PlaneReader, start: int, stop: int, *,
                      region: tuple[slice, ...] | None = None,
                      cache: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Component numbers of planes ``start:stop`` (optionally cropped to ``region`` in-plane).

        The planes of every scan slab that overlaps the range are labelled again (whole slabs,
        so the provisional ids are those of the scan) and mapped through :attr:`lut`. With
        ``cache``, whole-plane results are kept per slab and slabs before ``start`` are dropped,
        which suits windows that move forward.
        """
        rest = region if region is not None else tuple(slice(None) for _ in self.shape[1:])
        if cache is not None:
            for s in [s for s in cache if self.slabs[s + 1] <= start]:
                del cache[s]
        parts = []
        first = int(np.searchsorted(self.slabs, start, side="right")) - 1
        for s in range(first, len(self.slabs) - 1):
            a, b = int(self.slabs[s]), int(self.slabs[s + 1])
            if a >= stop:
                break
            if cache is not None and s in cache:
                comp = cache[s]
            else:
                lab, _ = label_block(np.asarray(read(a, b)), self.structure)
                comp = self.lut[np.where(lab > 0, lab + self.offsets[s], 0)]
                if cache is not None:
                    cache[s] = comp
            parts.append(comp[(slice(max(start, a) - a, min(stop, b) - a), *rest)])
        return np.concatenate(parts, axis=0)


def scan_components(read: PlaneReader, shape: tuple[int, ...], *, slab: int,
                    structure: np.ndarray) -> ComponentIndex:
    """Connected components of each class, read ``slab`` planes at a time.

    Parameters
    ----------
    read : callable returning planes ``start:stop`` of the class map (integer class ids).
    shape : spatial shape ``(Z, Y, X)`` or ``(Y, X)``.
    slab : planes per read along the first axis.
    structure : neighbourhood (``scipy.ndimage.generate_binary_structure``).

    Returns
    -------
    ComponentIndex
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    plane = int(np.prod(shape[1:], dtype=np.int64))
    bounds = list(range(0, shape[0], slab)) + [shape[0]]
    offsets, classes, first, lo, hi, voxels, pairs = [], [], [], [], [], [], []
    total = 0
    prev_lab = prev_cls = None
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        block = np.asarray(read(a, b))
        lab, cls = label_block(block, structure)
        n = cls.size
        offsets.append(total)
        glab = np.where(lab > 0, lab + total, 0)
        if prev_lab is not None:
            pairs.append(_face_pairs(prev_lab, prev_cls, glab[0], block[0], structure))
        prev_lab, prev_cls = glab[-1].copy(), block[-1].copy()
        if n:
            classes.append(cls)
            first.append(_first_indices(lab.ravel(), n) + a * plane)
            boxes = ndi.find_objects(lab)
            shift = np.array([a] + [0] * (len(shape) - 1), np.int64)
            lo.append(np.array([[s.start for s in bx] for bx in boxes], np.int64) + shift)
            hi.append(np.array([[s.stop for s in bx] for bx in boxes], np.int64) + shift)
            voxels.append(np.bincount(lab.ravel(), minlength=n + 1)[1:])
        total += n
    nd = len(shape)
    if total == 0:
        empty = np.zeros((0, nd), np.int64)
        return ComponentIndex(tuple(shape), structure, np.array(bounds), np.array(offsets), np.zeros(1, np.int64),
                              np.zeros(0, np.int64), np.zeros(0, np.int64), empty, empty, np.zeros(0, np.int64))
    edges = np.concatenate(pairs) - 1 if pairs else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(total, total))
    n_comp, group = connected_components(graph, directed=False)
    cls_p, first_p = np.concatenate(classes), np.concatenate(first)
    lo_p, hi_p, vox_p = np.concatenate(lo), np.concatenate(hi), np.concatenate(voxels)
    g_first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(g_first, group, first_p)
    order = np.argsort(g_first)  # components numbered by their first voxel
    rank = np.empty(n_comp, np.int64)
    rank[order] = np.arange(n_comp)
    comp = rank[group]  # provisional (0-based) -> component (0-based)
    g_lo = np.full((n_comp, nd), np.iinfo(np.int64).max, np.int64)
    g_hi = np.zeros((n_comp, nd), np.int64)
    np.minimum.at(g_lo, comp, lo_p)
    np.maximum.at(g_hi, comp, hi_p)
    g_cls = np.zeros(n_comp, np.int64)
    g_cls[comp] = cls_p
    lut = np.zeros(total + 1, np.int64)
    lut[1:] = comp + 1
    dtype = np.uint32 if n_comp < 2**32 - 1 else np.int64
    return ComponentIndex(
        shape=tuple(shape), structure=structure, slabs=np.array(bounds), offsets=np.array(offsets, np.int64),
        lut=lut.astype(dtype), classes=g_cls, first=g_first[order], lo=g_lo, hi=g_hi,
        voxels=np.bincount(comp, weights=vox_p, minlength=n_comp).astype(np.int64),
    )
