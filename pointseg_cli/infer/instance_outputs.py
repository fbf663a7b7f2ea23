"""The instance step of ``segment``: ``<stem>.instances.tif`` and ``<stem>.objects.csv`` from the written labels.

:func:`resolve_instance_method` turns the requested method (``auto`` or one of
:data:`~pointseg_cli.infer.instances.INSTANCE_METHODS`) into the one used for a model: ``auto`` is
``centers`` when the model has a centre output, else ``distance``.

:class:`CentreSpool` collects the blended centre map row block by row block (rows arrive in
order) in a raw float32 file, read back as a read-only memory map, so the map never has to fit
in memory. :func:`write_instances` runs :func:`~pointseg_cli.infer.instances.instances_from_maps`
on the finished class map, writing uint32 ids into an OME-TIFF (same axes, voxel size and
provenance as the labels) and the object table as CSV.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError
from pointseg_cli.infer.instances import BASELINE_METHODS, INSTANCE_METHODS, InstanceConfig, InstanceResult

log = logging.getLogger(__name__)

#: What ``--instances`` accepts.
INSTANCE_CHOICES = ("auto", *INSTANCE_METHODS)


def resolve_instance_method(requested: str, metadata: Any, *, name: str = "the model") -> tuple[str, str]:
    """The method used for a model, and why (one phrase for the log).

    Raises
    ------
    ConfigError
        ``centers`` for a model without a centre output.
    """
    has = bool(getattr(metadata, "has_centers", False))
    if requested == "auto":
        if has:
            return "centers", f"{name} has a centre output"
        return "distance", f"{name} has no centre output"
    if requested == "centers" and not has:
        raise ConfigError(
            f"--instances centers needs a model with a centre output, and {name} has none; "
            f"use one of: auto, {', '.join(BASELINE_METHODS)}"
        )
    return requested, f"requested for {name}"


class CentreSpool:
    """A raw float32 file filled with consecutive row blocks, then read as a memory map."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.path = Path(path)
        self.shape = tuple(shape)
        self._fh: Any = open(self.path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, rows: np.ndarray) -> None:
        if self._fh is None:
            raise RuntimeError("centre spool is closed")
        self._fh.write(np.ascontiguousarray(rows, dtype=np.float32).tobytes())

    def close(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            fh.close()

    def array(self) -> np.ndarray:
        """The whole map, read-only and memory-mapped (call after the last :meth:`write`)."""
        self.close()
        return np.memmap(self.path, dtype=np.float32, mode="r", shape=self.shape)


class _ImageRows:
    """Rows ``a:b`` of a lazy image, channel last, for the objects' mean intensity."""

    def __init__(self, image: Any, spatial: tuple[int, ...]) -> None:
        self._image = image
        self._rest = tuple(slice(None) for _ in spatial[1:])
        self.shape = tuple(image.shape)

    def __getitem__(self, index: slice) -> np.ndarray:
        data = np.array(self._image.read((index, *self._rest)))
        self._image.release()
        return data


class IdsView:
    """Object ids read plane by plane for the preview (as :class:`~pointseg_cli.infer.outputs.LabelWriter` reads)."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = ids

    def plane(self, index: int | None, *, step: int = 1) -> np.ndarray:
        if index is None:
            return np.array(self._ids[::step, ::step])
        return np.array(self._ids[index, ::step, ::step])

    def section(self, axis: int, index: int, *, step: int = 1, z_step: int = 1) -> np.ndarray:
        if axis == 1:
            return np.array(self._ids[::z_step, index, ::step])
        return np.array(self._ids[::z_step, ::step, index])


def instance_config(method: str, voxel_size: Sequence[float] | None, *, min_distance: float = 3.0,
                    peak_threshold: float | None = None) -> InstanceConfig:
    """The :class:`InstanceConfig` of ``segment``'s instance step (one process and Dask alike)."""
    spacing = tuple(float(v) for v in voxel_size) if voxel_size is not None else None
    return InstanceConfig(method=method, spacing=spacing, min_distance=float(min_distance), threshold=peak_threshold)


def write_instances(
    labels_path: Path,
    instances_path: Path,
    objects_path: Path,
    *,
    method: str,
    centers: np.ndarray | None,
    image: Any,
    axes: str,
    classes: Sequence[str],
    voxel_size: Sequence[float] | None,
    provenance: Mapping[str, Any] | None,
    min_distance: float = 3.0,
    peak_threshold: float | None = None,
) -> tuple[InstanceResult, np.ndarray]:
    """Instance ids of the class map at ``labels_path`` into ``instances_path`` and the table into ``objects_path``.

    Both paths are the caller's temporary names (renamed when the whole input is done). Returns
    the result and the ids as a memory map (for the preview; the caller drops it before the rename).
    """
    import tifffile

    from pointseg_cli.infer.instances import instances_from_maps
    from pointseg_cli.infer.objects import write_objects_csv
    from pointseg_cli.io.writers import ome_physical_size

    if method not in INSTANCE_METHODS or method == "none":
        raise ConfigError(f"instance method must be one of {', '.join(INSTANCE_METHODS[:-1])}; got {method!r}")
    labels = tifffile.memmap(labels_path, mode="r")
    spatial = tuple(int(s) for s in labels.shape)
    cfg = instance_config(method, voxel_size, min_distance=min_distance, peak_threshold=peak_threshold)
    description = {"classes": ["background", *classes], "pointseg": dict(provenance or {}) or None,
                   "instances": {"method": method, "min_distance": cfg.min_distance, "threshold": cfg.peak_threshold}}
    meta = {"axes": axes, **ome_physical_size(axes, voxel_size), "Description": json.dumps(description)}
    ids = tifffile.memmap(instances_path, shape=spatial, dtype=np.uint32, ome=True, metadata=meta)
    result = instances_from_maps(labels, centers, ids, config=cfg, image=_ImageRows(image, spatial))
    ids.flush()
    del labels
    write_objects_csv(objects_path, result.table, class_names=list(classes), unit="um")
    if result.approximate:
        log.warning("%d very large object component(s) were split approximately", len(result.approximate))
    return result, ids
