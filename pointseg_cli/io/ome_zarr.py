"""Writing OME-Zarr (NGFF) images through ome-zarr-py, streamed region by region.

The NGFF version follows the installed zarr: NGFF 0.4 (zarr format 2, ``/`` chunk keys) with
zarr 2, NGFF 0.5 (zarr format 3, metadata under ``attrs["ome"]``) with zarr 3, so that what we
write is what napari, ome-zarr's ``Reader`` and other tools of the same environment read. The
``multiscales`` metadata (axes, units, the ``scale`` transformation that carries the voxel size)
is written by :func:`ome_zarr.writer.write_multiscales_metadata`; the pixel array is created
empty and filled by the caller region by region, so no whole-volume array is ever held in memory.
Provenance goes into the group's attributes under ``"pointseg"``.

The writer works on a path the caller chose, normally the temporary path of
:func:`pointseg_cli.io.writers.atomic_output`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

#: NGFF axis types by our axis letters.
AXIS_TYPES = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
#: Unit written for spatial axes when the voxel size is known (voxel sizes are in micrometres).
SPACE_UNIT = "micrometer"


def zarr_major() -> int:
    """Major version of the installed zarr-python."""
    import zarr

    return int(str(zarr.__version__).split(".", 1)[0])


def ngff_version() -> str:
    """The NGFF version written with the installed zarr: ``"0.4"`` (zarr 2) or ``"0.5"`` (zarr 3)."""
    return "0.5" if zarr_major() >= 3 else "0.4"


def _format() -> Any:
    if zarr_major() >= 3:
        from ome_zarr.format import FormatV05

        return FormatV05()
    from ome_zarr.format import FormatV04

    return FormatV04()


def ngff_axes(axes: str, *, voxel_size: Sequence[float] | None) -> list[dict[str, str]]:
    """NGFF axis objects for axis letters (e.g. ``"CZYX"``); spatial axes get a unit with a voxel size."""
    out = []
    for letter in axes.upper():
        entry = {"name": letter.lower(), "type": AXIS_TYPES[letter]}
        if voxel_size is not None and entry["type"] == "space":
            entry["unit"] = SPACE_UNIT
        out.append(entry)
    return out


def ngff_scale(axes: str, *, voxel_size: Sequence[float] | None) -> list[float]:
    """Per-axis ``scale``: the voxel size (µm) on spatial axes in order, 1 elsewhere."""
    spatial = [a for a in axes.upper() if AXIS_TYPES[a] == "space"]
    if voxel_size is not None and len(voxel_size) != len(spatial):
        raise ValueError(f"voxel size needs {len(spatial)} values for axes {axes}; got {tuple(voxel_size)}")
    sizes = iter(voxel_size or ())
    return [float(next(sizes)) if voxel_size is not None and AXIS_TYPES[a] == "space" else 1.0 for a in axes.upper()]


class OmeZarrWriter:
    """A single-scale OME-Zarr image created empty and filled region by region.

    Parameters
    ----------
    path : Path
        Folder to create (normally a temporary path; it must not exist).
    shape : tuple of int
        Array shape, in the order of ``axes``.
    dtype : numpy dtype
        Element type.
    axes : str
        Axis letters, e.g. ``"CZYX"``, ``"ZYX"``, ``"YX"``.
    chunks : tuple of int
        Chunk shape (one chunk along the first spatial axis per written slab keeps writes aligned).
    voxel_size : sequence of float, optional
        Micrometres per voxel along the spatial axes, in order; written as the dataset's ``scale``
        with unit ``micrometer``. Without it the scale is 1 and no unit is given.
    attributes : mapping, optional
        Extra group attributes (JSON-serialisable), e.g. ``{"pointseg": provenance}``.
    name : str, optional
        The multiscale image's name.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        dtype: Any,
        *,
        axes: str,
        chunks: tuple[int, ...],
        voxel_size: Sequence[float] | None = None,
        attributes: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        import zarr
        from ome_zarr.writer import write_multiscales_metadata

        axes = axes.upper()
        if len(axes) != len(shape) or len(chunks) != len(shape):
            raise ValueError(f"axes {axes!r}, shape {shape} and chunks {chunks} must have the same length")
        fmt = _format()
        chunks = tuple(max(1, min(int(c), int(s))) for c, s in zip(chunks, shape, strict=True))
        if zarr_major() >= 3:
            group = zarr.open_group(str(path), mode="w", zarr_format=3)
            self.array = group.create_array(
                "0", shape=shape, dtype=dtype, chunks=chunks, dimension_names=[a.lower() for a in axes]
            )
        else:  # zarr 2: NGFF 0.4 wants "/" between chunk indices
            group = zarr.open_group(str(path), mode="w")
            self.array = group.create_dataset("0", shape=shape, dtype=dtype, chunks=chunks, dimension_separator="/")
        datasets = [{"path": "0", "coordinateTransformations": [
            {"type": "scale", "scale": ngff_scale(axes, voxel_size=voxel_size)}]}]
        write_multiscales_metadata(group, datasets, fmt=fmt, axes=ngff_axes(axes, voxel_size=voxel_size),
                                   name=name or Path(path).name)
        for key, value in (attributes or {}).items():
            group.attrs[key] = value
        self.group = group

    def write(self, region: tuple[slice, ...], data: np.ndarray) -> None:
        """Write ``data`` into ``region`` of the array."""
        self.array[region] = data

    def close(self) -> None:
        """Drop the handles (zarr writes each chunk when it is assigned)."""
        self.array = None
        self.group = None


def write_ome_zarr(
    path: Path,
    data: np.ndarray,
    *,
    axes: str,
    chunks: tuple[int, ...],
    voxel_size: Sequence[float] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> None:
    """Write an in-memory array as a single-scale OME-Zarr image at ``path`` (not atomic by itself)."""
    writer = OmeZarrWriter(path, tuple(data.shape), data.dtype, axes=axes, chunks=chunks, voxel_size=voxel_size,
                           attributes=attributes)
    writer.write(tuple(slice(None) for _ in data.shape), data)
    writer.close()
