"""Object instances of one volume segmented in blocks: the same objects as one process.

The block mode writes ``<stem>.instances.zarr`` (uint32 ids, 0 = background) and
``<stem>.objects.csv`` beside the labels whenever instances are on. How the ids are made:

1. Every block task writes its class ids into the (temporary) label store and, for the
   ``centers`` method, its blended centre map into a scratch store. Both equal the one-process
   maps bitwise (:mod:`pointseg_cli.infer.blocks`), so after the last block the two stores hold
   exactly the maps that one process would have.
2. One more task, :func:`instances_task`, then runs the one-process instance step,
   :func:`~pointseg_cli.infer.instances.instances_from_maps`, over those complete maps: connected
   components scanned slab by slab and joined across slab faces, each component segmented
   (peaks + seeded watershed) in a window that holds it whole, ids numbered in raster order of
   each object's first voxel. An object that spans blocks is therefore one object with one id,
   and ``instances.zarr`` and the object table are *identical* to what ``pointseg segment``
   writes without Dask (not merely equal up to relabelling).

Why not watershed each block and merge ids across block faces: the watershed of an object that
crosses a face depends on the whole connected component it lies in (its peaks and its flooding
order), so per-block results glued at the faces differ from the whole-volume result wherever a
component crosses a face, and making them agree means redoing those components whole anyway.
Running the streamed algorithm on the assembled maps gives exactness by construction and keeps
one implementation of the instance step. Its cost is that this step runs on one worker, after
the blocks (memory bounded as in one process; the maps are first copied into memory-mapped
scratch files beside the outputs, so the algorithm's many thin slab reads never decompress the
same store chunks again and again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstancesDone:
    """A finished instance step: objects written, connected components, approximated components."""

    n_instances: int
    n_components: int
    approximate: tuple[int, ...]
    seconds: float


def _copy_rows(src: Any, dst: Any, step: int) -> None:
    """``dst[...] = src[...]`` by runs of ``step`` rows along the first axis (whole store chunks)."""
    for a in range(0, int(src.shape[0]), step):
        b = min(a + step, int(src.shape[0]))
        dst[a:b] = np.asarray(src[a:b])


def instances_task(
    image_path: str,
    *,
    labels_store: str,
    centers_store: str | None,
    instances_store: str,
    objects_path: str,
    scratch: str,
    method: str,
    axes: str | None,
    voxel_size: Sequence[float] | None,
    classes: Sequence[str],
    min_distance: float = 3.0,
    peak_threshold: float | None = None,
) -> InstancesDone:
    """Instance ids and object table of a volume whose class (and centre) maps are complete stores.

    Runs on a worker. ``labels_store``, ``centers_store`` and ``instances_store`` are OME-Zarr
    stores with the array at ``0`` (the centre store only for ``centers``); the ids overwrite
    every voxel of ``instances_store`` and the table is written to ``objects_path`` (atomically),
    so a retried task gives the same result. ``scratch`` names the local copies of the maps
    (``<scratch>.labels.raw`` and so on, as hidden temporaries beside it, removed afterwards).
    """
    import zarr

    from pointseg_cli.infer.instance_outputs import _ImageRows, instance_config
    from pointseg_cli.infer.instances import instances_from_maps
    from pointseg_cli.infer.objects import write_objects_csv
    from pointseg_cli.io.images import open_image
    from pointseg_cli.io.writers import scratch_file

    t0 = time.perf_counter()
    labels_z = zarr.open_array(str(Path(labels_store) / "0"), mode="r")
    out_z = zarr.open_array(str(Path(instances_store) / "0"), mode="r+")
    shape = tuple(int(s) for s in labels_z.shape)
    step = int(labels_z.chunks[0])
    with scratch_file(f"{scratch}.labels.raw") as lab_p, scratch_file(f"{scratch}.ids.raw") as ids_p, \
            scratch_file(f"{scratch}.centers.raw") as cen_p:
        labels = np.memmap(lab_p, dtype=labels_z.dtype, mode="w+", shape=shape)
        _copy_rows(labels_z, labels, step)
        centers = None
        if centers_store is not None:
            centers = np.memmap(cen_p, dtype=np.float32, mode="w+", shape=shape)
            _copy_rows(zarr.open_array(str(Path(centers_store) / "0"), mode="r"), centers, step)
        ids = np.memmap(ids_p, dtype=np.uint32, mode="w+", shape=shape)
        image = open_image(image_path, axes=axes)
        cfg = instance_config(method, voxel_size, min_distance=min_distance, peak_threshold=peak_threshold)
        result = instances_from_maps(labels, centers, ids, config=cfg,
                                     image=_ImageRows(image, shape))
        _copy_rows(ids, out_z, step)
        del labels, centers, ids
    write_objects_csv(objects_path, result.table, class_names=list(classes), unit="um")
    if result.approximate:
        log.warning("%d very large object component(s) were split approximately", len(result.approximate))
    return InstancesDone(n_instances=result.n_instances, n_components=result.n_components,
                         approximate=tuple(result.approximate), seconds=time.perf_counter() - t0)
