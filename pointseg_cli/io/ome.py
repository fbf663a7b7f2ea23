"""OME-TIFF writing with physical voxel sizes (``PhysicalSizeX/Y/Z`` in micrometres).

:func:`pointseg_cli.io.writers.write_tiff` records axes but no voxel size; images whose voxels
have a known physical size (anisotropic microscopy volumes) are written here instead, so that
Fiji, napari and OME readers see the true geometry. X/Y pixel sizes also go into the baseline
TIFF ``XResolution``/``YResolution`` tags (pixels per centimetre) for readers that ignore OME-XML.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError
from pointseg_cli.io.writers import atomic_output

#: Unit written for every physical size (OME's ``PhysicalSize*Unit``).
UNIT = "µm"


def ome_physical_sizes(axes: str, voxel_size: Sequence[float]) -> dict[str, float | str]:
    """OME ``PhysicalSize*`` entries for the spatial axes of ``axes`` (``'ZYX'``, ``'YX'``, ``'YXC'`` ...).

    ``voxel_size`` gives one positive size in micrometres per spatial axis, in the order the
    spatial axes appear in ``axes``.
    """
    spatial = [a for a in axes.upper() if a in "ZYX"]
    sizes = [float(v) for v in voxel_size]
    if len(sizes) != len(spatial) or not all(np.isfinite(v) and v > 0 for v in sizes):
        raise ImageFormatError(
            f"voxel size needs {len(spatial)} positive values for axes {''.join(spatial)}; got {list(voxel_size)}"
        )
    meta: dict[str, float | str] = {}
    for axis, size in zip(spatial, sizes, strict=True):
        meta[f"PhysicalSize{axis}"] = size
        meta[f"PhysicalSize{axis}Unit"] = UNIT
    return meta


def write_ome_tiff(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str,
    voxel_size: Sequence[float],
    compression: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``data`` as an OME-TIFF with axes and physical voxel size, atomically.

    Parameters
    ----------
    path : destination file.
    data : array described by ``axes``; only grayscale (``ZYX``, ``YX``) or RGB (``YXC``, 3 or 4
        samples) layouts are accepted.
    axes : axis letters of ``data``.
    voxel_size : micrometres per spatial axis, e.g. ``(0.125, 0.04, 0.04)`` for ``ZYX``.
    compression : tifffile compression name (``"zlib"``...), or ``None``.
    metadata : small JSON-able provenance stored as the OME image description.
    """
    import tifffile

    path = Path(path)
    axes = axes.upper()
    if len(axes) != data.ndim or (axes.endswith("C") and data.shape[-1] not in (3, 4)):
        raise ImageFormatError(f"axes {axes!r} do not fit array shape {data.shape} (grayscale or RGB only)")
    meta: dict[str, Any] = {"axes": axes, **ome_physical_sizes(axes, voxel_size)}
    if metadata:
        meta["Description"] = json.dumps(metadata, default=str)
    per_cm = tuple(1e4 / float(meta[f"PhysicalSize{a}"]) for a in "YX")  # TIFF wants X first
    with atomic_output(path) as tmp:
        tifffile.imwrite(
            tmp,
            data,
            ome=True,
            metadata=meta,
            compression=compression,
            photometric="rgb" if axes.endswith("C") else "minisblack",
            resolution=(per_cm[1], per_cm[0]),
            resolutionunit="CENTIMETER",
        )
    return path
