"""The plain whole-window formulation of instance segmentation: the oracle for the fast path.

:func:`reference_instances` segments a class map held in memory the straightforward way: it
labels every class, finds the peaks of all components at once (:func:`find_peaks`), and runs one
seeded watershed per class over the whole array. It is slow on large volumes (every step touches
every voxel, once per class) but has no cropping, scheduling or shortcut in it, so the tests compare
:func:`~pointseg_cli.infer.instances.label_instances` and the streamed
:func:`~pointseg_cli.infer.instances.instances_from_maps` with it, voxel for voxel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.infer.watershed import distance_map, find_peaks, flood_order, neighbourhood, peak_radii

if TYPE_CHECKING:
    from pointseg_cli.infer.instances import InstanceConfig


def segment_components(cls: np.ndarray, comp: np.ndarray, values: np.ndarray | None, *,
                       config: InstanceConfig) -> tuple[np.ndarray, int]:
    """Instances of every component present in ``comp`` (one window of the volume).

    Parameters
    ----------
    cls : class ids of the window ``(Z, Y, X)`` or ``(Y, X)``; every voxel, not only ``comp``'s.
    comp : component numbers to segment (0 = leave alone); each must lie wholly in the window,
        with one voxel to spare on each side that is not the volume's edge (for ``distance``).
    values : centre map of the window (``centers`` only).
    config : the method and its settings.

    Returns
    -------
    ids : int64, window shape, instance ids 1..n (0 elsewhere), numbered in no particular order.
    n : the number of instances.
    """
    from skimage.segmentation import watershed

    out = np.zeros(comp.shape, np.int64)
    if config.method == "components":
        present, inv = np.unique(comp, return_inverse=True)
        inv = inv.reshape(comp.shape)
        start = 1 if present[0] == 0 else 0
        return np.where(comp > 0, inv + (1 - start), 0), int(present.size - start)
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
    return out, n


def reference_instances(class_map: np.ndarray, centers: np.ndarray | None = None, *,
                        config: InstanceConfig) -> np.ndarray:
    """Instance ids of a class map held in memory, computed over the whole array at once.

    Same contract and result as :func:`~pointseg_cli.infer.instances.label_instances` (uint32,
    ids 1..N in raster order of each object's first voxel); only much slower.
    """
    from pointseg_cli.infer.instances import renumber_by_first_voxel
    from pointseg_cli.infer.stitch import label_block

    cls = np.asarray(class_map)
    if config.method == "none":
        return np.zeros(cls.shape, np.uint32)
    comp, _ = label_block(cls, neighbourhood(cls.ndim, config.connectivity))
    values = None if centers is None else np.asarray(centers, np.float32)
    ids, _ = segment_components(cls, comp, values, config=config)
    return renumber_by_first_voxel(ids)
