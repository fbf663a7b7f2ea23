"""The object table: one row per instance, accumulated slab by slab, and its CSV file.

Columns of ``<stem>.objects.csv`` (one row per instance id, in id order)::

    id, class, [z,] y, x, [z_<unit>,] y_<unit>, x_<unit>, voxels,
    [z_min,] y_min, x_min, [z_max,] y_max, x_max, mean_intensity[_c<k>]

Centroids are in pixels (the mean voxel coordinate) and, when the voxel size is known, in
physical units (pixels times the voxel size; empty otherwise). The bounding box is inclusive.
Mean intensity is over the object's voxels in the input image (one column per channel; empty
when no image was given).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.errors import InputError
from pointseg_cli.io.writers import atomic_output

AXES = "zyx"


@dataclass(frozen=True)
class ObjectTable:
    """Per-instance measurements (row ``i`` describes id ``ids[i]``).

    Attributes
    ----------
    ids, classes, voxels : (n,) int64.
    centroid : (n, ndim) float64, pixels.
    lo, hi : (n, ndim) int64 bounding box, ``hi`` exclusive.
    mean_intensity : (n, C) float64, or ``None`` without an image.
    spacing : voxel size per axis, or ``None``.
    """

    ids: np.ndarray
    classes: np.ndarray
    voxels: np.ndarray
    centroid: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mean_intensity: np.ndarray | None = None
    spacing: tuple[float, ...] | None = None

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def ndim(self) -> int:
        return int(self.centroid.shape[1])

    @property
    def centroid_physical(self) -> np.ndarray | None:
        """Centroids times the voxel size, or ``None`` when the voxel size is unknown."""
        return None if self.spacing is None else self.centroid * np.asarray(self.spacing)


class ObjectAccumulator:
    """Sums per instance id over blocks of whole planes (any order, each voxel once).

    Parameters
    ----------
    n : largest id.
    ndim : spatial dimensions.
    channels : image channels (0 when no image is measured).
    """

    def __init__(self, n: int, ndim: int, *, channels: int = 0) -> None:
        self.n, self.ndim, self.channels = n, ndim, channels
        self.voxels = np.zeros(n + 1, np.int64)
        self.sums = np.zeros((n + 1, ndim), np.float64)
        self.intensity = np.zeros((n + 1, channels), np.float64)
        self.lo = np.full((n + 1, ndim), np.iinfo(np.int64).max, np.int64)
        self.hi = np.zeros((n + 1, ndim), np.int64)

    def grow(self, n: int) -> None:
        """Make room for ids up to ``n`` (ids are numbered as the planes are written)."""
        if n <= self.n:
            return
        have = self.voxels.shape[0]
        if n + 1 > have:  # capacity doubles, so growing id by id costs linear time overall
            extra = max(n + 1, 2 * have) - have
            self.voxels = np.concatenate([self.voxels, np.zeros(extra, np.int64)])
            self.sums = np.concatenate([self.sums, np.zeros((extra, self.ndim), np.float64)])
            self.intensity = np.concatenate([self.intensity, np.zeros((extra, self.channels), np.float64)])
            self.lo = np.concatenate([self.lo, np.full((extra, self.ndim), np.iinfo(np.int64).max, np.int64)])
            self.hi = np.concatenate([self.hi, np.zeros((extra, self.ndim), np.int64)])
        self.n = n

    def add(self, ids: np.ndarray, start: int, image: np.ndarray | None = None) -> None:
        """Add planes ``start : start + len(ids)`` (``ids`` full in the other axes).

        ``image`` is the matching block of the input image, channel last when it has channels.
        """
        flat = ids.ravel()
        idx = np.flatnonzero(flat)
        if idx.size == 0:
            return
        vals = flat[idx].astype(np.int64, copy=False)
        counts = np.bincount(vals, minlength=self.n + 1)
        present = np.flatnonzero(counts)  # ids > 0 only
        self.voxels[: counts.size] += counts
        dense_lut = np.zeros(self.n + 1, np.int32 if present.size < 2**31 - 1 else np.int64)
        dense_lut[present] = np.arange(1, present.size + 1)
        dense = dense_lut[vals]  # foreground voxels only, numbered 1..m-1
        m = present.size + 1
        coords = np.unravel_index(idx, ids.shape)
        for a in range(self.ndim):
            w = coords[a].astype(np.float64) + (start if a == 0 else 0)
            self.sums[present, a] += np.bincount(dense, weights=w, minlength=m)[1:]
        boxes = ndi.find_objects(dense_lut[ids])
        lo = np.array([[s.start for s in b] for b in boxes], np.int64)
        hi = np.array([[s.stop for s in b] for b in boxes], np.int64)
        lo[:, 0] += start
        hi[:, 0] += start
        self.lo[present] = np.minimum(self.lo[present], lo)
        self.hi[present] = np.maximum(self.hi[present], hi)
        if self.channels and image is not None:
            img = np.asarray(image).reshape(flat.size, -1)[idx].astype(np.float64)
            for ch in range(self.channels):
                self.intensity[present, ch] += np.bincount(dense, weights=img[:, ch], minlength=m)[1:]

    def table(self, classes: np.ndarray, *, spacing: Sequence[float] | None = None,
              with_intensity: bool = False) -> ObjectTable:
        """The table of ids 1..n (``classes[i]`` is the class of id ``i + 1``)."""
        k = self.n + 1
        vox = self.voxels[1:k]
        div = np.maximum(vox, 1)[:, None]
        return ObjectTable(
            ids=np.arange(1, k, dtype=np.int64), classes=np.asarray(classes, np.int64), voxels=vox.copy(),
            centroid=self.sums[1:k] / div, lo=self.lo[1:k].copy(), hi=self.hi[1:k].copy(),
            mean_intensity=self.intensity[1:k] / div if with_intensity and self.channels else None,
            spacing=None if spacing is None else tuple(float(s) for s in spacing),
        )


def object_table(ids: np.ndarray, *, class_map: np.ndarray | None = None, image: np.ndarray | None = None,
                 spacing: Sequence[float] | None = None) -> ObjectTable:
    """Object table of an instance image held in memory (ids need not be consecutive: rows are
    the ids 1..max, absent ids have 0 voxels)."""
    ids = np.asarray(ids)
    n = int(ids.max(initial=0))
    channels = 0 if image is None else (1 if np.ndim(image) == ids.ndim else int(np.shape(image)[-1]))
    acc = ObjectAccumulator(n, ids.ndim, channels=channels)
    acc.add(ids, 0, image)
    classes = np.zeros(n, np.int64)
    if class_map is not None:
        sel = ids > 0
        classes[ids[sel].astype(np.int64) - 1] = np.asarray(class_map)[sel]
    return acc.table(classes, spacing=spacing, with_intensity=image is not None)


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def write_objects_csv(path: str | Path, table: ObjectTable, *, class_names: Sequence[str] | None = None,
                      unit: str = "um") -> Path:
    """Write ``table`` as CSV (columns in the module docstring), atomically.

    Parameters
    ----------
    path : destination, e.g. ``x.objects.csv``.
    table : the rows.
    class_names : names of classes 1..K; without them the class id is written.
    unit : suffix of the physical centroid columns.
    """
    axes = AXES[-table.ndim:]
    if class_names is not None and len(table) and int(table.classes.max()) > len(class_names):
        raise InputError(
            f"object table has class id {int(table.classes.max())} but only {len(class_names)} class names"
        )
    n_ch = 0 if table.mean_intensity is None else table.mean_intensity.shape[1]
    inten = ["mean_intensity"] if n_ch <= 1 else [f"mean_intensity_c{k}" for k in range(n_ch)]
    header = ["id", "class", *axes, *(f"{a}_{unit}" for a in axes), "voxels",
              *(f"{a}_min" for a in axes), *(f"{a}_max" for a in axes), *inten]
    phys = table.centroid_physical
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for i in range(len(table)):
            c = int(table.classes[i])
            name = class_names[c - 1] if class_names is not None and c >= 1 else str(c)
            row = [str(int(table.ids[i])), name, *(_fmt(v) for v in table.centroid[i])]
            row += [_fmt(v) for v in phys[i]] if phys is not None else [""] * table.ndim
            row += [str(int(table.voxels[i])), *(str(int(v)) for v in table.lo[i]),
                    *(str(int(v) - 1) for v in table.hi[i])]
            row += [_fmt(v) for v in table.mean_intensity[i]] if n_ch else [""]
            w.writerow(row)
    return Path(path)
