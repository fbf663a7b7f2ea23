"""Incremental writers for segment outputs (labels, probabilities), their provenance and the preview.

The writers fill a file at a *temporary* path row block by row block (a TIFF filled with
``pwrite`` or an OME-Zarr array); :func:`pointseg_cli.io.images.atomic_output` renames it once the
image is complete. Every output records the voxel size (OME ``PhysicalSize*`` in TIFFs, the NGFF
``scale`` in OME-Zarr) and the provenance built by :func:`provenance` (model name and sha256,
pointseg version, the options that shaped it) in the OME description, the TIFF description JSON,
the zarr attributes (``"pointseg"``) or a PNG text chunk.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli import __version__
from pointseg_cli.infer.preview import PALETTE, Section, orthogonal_views, overlay, save_preview
from pointseg_cli.io.writers import ome_physical_size

log = logging.getLogger(__name__)

__all__ = [
    "PALETTE", "LabelWriter", "ProbabilityWriter", "Section", "complete_provenance", "overlay", "provenance",
    "write_preview", "write_segment_preview", "write_volume_preview",
]


def provenance(
    *,
    model: str,
    model_sha256: str | None,
    options: Mapping[str, Any],
    input: str | None = None,
    voxel_size: Sequence[float] | None = None,
) -> dict[str, Any]:
    """What made an output, as a JSON-serialisable dict stored with it.

    Parameters
    ----------
    model : str
        The model's name (registry name, or the file / run folder name).
    model_sha256 : str or None
        sha256 of the model file (None for a model held in memory).
    options : mapping
        The settings that shaped the output (tile, overlap, blend, precision, ...).
    input : str, optional
        The input file's name.
    voxel_size : sequence of float, optional
        Micrometres per voxel along the spatial axes.
    """
    return {
        "software": "pointseg",
        "version": __version__,
        "model": {"name": model, "sha256": model_sha256},
        "input": input,
        "voxel_size_um": list(voxel_size) if voxel_size is not None else None,
        "options": dict(options),
    }


class _RawTiff:
    """An uncompressed, contiguous TIFF created by tifffile and then filled with ``os.pwrite``.

    Writing through a file descriptor instead of a memory map keeps written pages out of this
    process's resident set (dirty mapped pages would count towards RSS until unmapped), so peak
    memory stays independent of the output size.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, **tiff_kwargs: object) -> None:
        import tifffile

        mm = tifffile.memmap(path, shape=shape, dtype=dtype, **tiff_kwargs)
        self.offset = int(mm.offset)
        del mm
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self._fd: int | None = os.open(path, os.O_RDWR)

    def _check_open(self) -> int:
        if self._fd is None:
            raise RuntimeError("output file is closed")
        return self._fd

    def write(self, index: tuple[int, ...], start: int, rows: np.ndarray) -> None:
        """Write ``rows`` at ``[*index, start : start + len(rows)]`` (``index`` selects leading axes)."""
        fd = self._check_open()
        lead = len(index)
        inner = self.shape[lead:]
        row_bytes = int(np.prod(inner[1:], dtype=np.int64)) * self.dtype.itemsize
        block_bytes = int(np.prod(inner, dtype=np.int64)) * self.dtype.itemsize
        flat = int(np.ravel_multi_index(index, self.shape[:lead])) if lead else 0
        pos = self.offset + flat * block_bytes + start * row_bytes
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        view = memoryview(data).cast("B")
        while view:
            n = os.pwrite(fd, view, pos)
            view = view[n:]
            pos += n

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` along axis 0 (files without leading index axes)."""
        fd = self._check_open()
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        buf = os.pread(fd, (stop - start) * row_bytes, self.offset + start * row_bytes)
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start, *self.shape[1:])).copy()

    def flush(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


class LabelWriter:
    """uint8 class ids ``(*spatial)`` written into an uncompressed OME-TIFF, row block by row block.

    Parameters
    ----------
    path : Path
        Temporary file to create.
    shape : tuple of int
        Spatial shape.
    axes : str
        ``"YX"`` or ``"ZYX"``.
    classes : sequence of str
        Object class names, stored (with ``provenance``) as JSON in the OME description.
    voxel_size : sequence of float, optional
        Micrometres per voxel along the spatial axes; OME ``PhysicalSize*``.
    provenance : mapping, optional
        See :func:`provenance`.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        *,
        axes: str,
        classes: tuple[str, ...],
        voxel_size: Sequence[float] | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> None:
        description = {"classes": ["background", *classes], "pointseg": dict(provenance or {}) or None}
        meta = {"axes": axes, **ome_physical_size(axes, voxel_size), "Description": json.dumps(description)}
        self._file = _RawTiff(path, shape, np.dtype(np.uint8), ome=True, metadata=meta)

    def write(self, start: int, rows: np.ndarray) -> None:
        """Write rows ``start : start + len(rows)`` along axis 0."""
        self._file.write((), start, rows)

    def plane(self, index: int | None, *, step: int = 1) -> np.ndarray:
        """A 2D plane (``index`` along Z, or the 2D image for None), subsampled by ``step``."""
        if index is None:
            rows = [self._file.read_rows(r, r + 1)[0, ::step] for r in range(0, self._file.shape[0], step)]
            return np.stack(rows)
        return self._file.read_rows(index, index + 1)[0][::step, ::step]

    def section(self, axis: int, index: int, *, step: int = 1, z_step: int = 1) -> np.ndarray:
        """A section of a volume at ``index`` along ``axis`` 1 (Y: ``(Z, X)``) or 2 (X: ``(Z, Y)``).

        Read plane by plane (``z_step`` apart) so that memory stays one plane; in-plane stride ``step``.
        """
        planes = []
        for z in range(0, self._file.shape[0], z_step):
            plane = self._file.read_rows(z, z + 1)[0]
            planes.append(plane[index, ::step] if axis == 1 else plane[::step, index])
        return np.stack(planes)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ProbabilityWriter:
    """float16 probabilities ``(K+1, *spatial)`` into an uncompressed TIFF or an OME-Zarr image.

    TIFF: tifffile's shaped format (OME has no float16): axes ``CZYX``/``CYX``, the voxel size
    (``voxel_size_um``, plus X/Y resolution tags in µm) and ``provenance`` in its JSON description.
    zarr: a single-scale OME-Zarr image (NGFF version of the installed zarr, see
    :mod:`pointseg_cli.io.ome_zarr`) chunked along the first spatial axis by ``chunk0``, the voxel
    size as its ``scale`` and the provenance in the group attributes.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, ...],
        *,
        axes: str,
        fmt: str,
        chunk0: int = 16,
        voxel_size: Sequence[float] | None = None,
        provenance: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> None:
        self._zarr = None
        self._file: _RawTiff | None = None
        if fmt == "tif":
            meta: dict[str, Any] = {"axes": axes}
            extra: dict[str, Any] = {}
            if voxel_size is not None:
                meta["voxel_size_um"] = [float(v) for v in voxel_size]
                extra = {"resolution": (1.0 / voxel_size[-1], 1.0 / voxel_size[-2]), "resolutionunit": "MICROMETER"}
            if provenance:
                meta["pointseg"] = dict(provenance)
            self._file = _RawTiff(path, shape, np.dtype(np.float16), metadata=meta, **extra)
        else:
            from pointseg_cli.io.ome_zarr import OmeZarrWriter

            chunks = (1, min(shape[1], chunk0), *(min(s, 512) for s in shape[2:]))
            self._zarr = OmeZarrWriter(
                path, shape, np.float16, axes=axes, chunks=chunks, voxel_size=voxel_size,
                attributes={"pointseg": dict(provenance)} if provenance else None, name=name,
            )

    def write(self, start: int, probs: np.ndarray) -> None:
        """Write ``probs`` ``(K+1, n, ...)`` at rows ``start : start + n`` of the first spatial axis."""
        if self._file is not None:
            for c in range(probs.shape[0]):
                self._file.write((c,), start, probs[c].astype(np.float16))
        elif self._zarr is not None:
            self._zarr.write((slice(None), slice(start, start + probs.shape[1])), probs.astype(np.float16))

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._zarr is not None:
            self._zarr.close()
            self._zarr = None


def write_preview(
    path: Path,
    plane: np.ndarray,
    labels: np.ndarray,
    *,
    instances: np.ndarray | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write the :func:`~pointseg_cli.infer.preview.overlay` of a 2D result as a PNG at ``path`` (temporary).

    ``instances`` (object ids, same shape as ``labels``) colours each object on its own.
    """
    save_preview(path, overlay(plane, labels, instances=instances), provenance=provenance)


def write_volume_preview(
    path: Path,
    xy: Section,
    xz: Section,
    yz: Section,
    *,
    z_scale: float = 1.0,
    cut: tuple[int, int, int] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> None:
    """Write the orthogonal views of a volume (:func:`~pointseg_cli.infer.preview.orthogonal_views`) as a PNG."""
    save_preview(path, orthogonal_views(xy, xz, yz, z_scale=z_scale, cut=cut), provenance=provenance)


def complete_provenance(
    base: Mapping[str, Any] | None,
    *,
    model: str,
    options: Any,
    name: str,
    voxel_size: Sequence[float] | None,
    tile: tuple[int, ...],
) -> dict[str, Any]:
    """The provenance of one input's outputs: ``base`` (model, options) plus input, voxel size and tile.

    Without ``base`` (a caller that did not describe its model) the model is named ``model`` with
    no hash and the options are read from ``options`` (a :class:`~pointseg_cli.infer.segment.SegmentOptions`).
    """
    if base is None:
        keys = ("overlap", "blend", "batch_size", "stain")
        base = provenance(model=model, model_sha256=None, options={k: getattr(options, k) for k in keys})
    prov = dict(base)
    prov["input"] = name
    prov["voxel_size_um"] = [float(v) for v in voxel_size] if voxel_size is not None else None
    prov["options"] = {**dict(base.get("options") or {}), "tile": [int(t) for t in tile]}
    return prov


def write_segment_preview(
    path: Path,
    image: Any,
    labels: LabelWriter,
    spatial: tuple[int, ...],
    *,
    voxel_size: Sequence[float] | None,
    provenance: Mapping[str, Any] | None,
    display: Callable[[np.ndarray], np.ndarray],
    max_size: int = 1024,
    instances: Any = None,
) -> None:
    """The preview of one segmented image: the 2D image, or orthogonal views through a volume's middle.

    Parameters
    ----------
    path : Path
        Temporary PNG path.
    image : LazyImage
        The input (canonical order); planes are read with a stride so the preview stays about
        ``max_size`` pixels wide, and one plane at a time.
    labels : LabelWriter
        The class map being written (read back plane by plane).
    spatial : tuple of int
        Spatial shape.
    voxel_size : sequence of float, optional
        Stretches Z in the sections so objects keep their shape.
    display : callable
        Raw pixels → intensities in ``[0, 1]``.
    instances : object, optional
        Something with the same ``plane(index, step=...)`` and ``section(axis, index, step=...,
        z_step=...)`` reads as ``labels`` giving object ids; each object then gets its own colour.
    """
    step = max(1, -(-max(spatial[-2:]) // max_size))
    inplane = (slice(None, None, step), slice(None, None, step))
    if len(spatial) == 2:
        inst = instances.plane(None, step=step) if instances is not None else None
        write_preview(path, display(image.read(inplane)), labels.plane(None, step=step), instances=inst,
                      provenance=provenance)
        return
    nz, ny, nx = spatial
    z_step = max(1, -(-nz // max_size))
    mz, my, mx = nz // 2, ny // 2, nx // 2
    every_z = slice(None, None, z_step)

    def ids(src: Any, axis: int, index: int) -> np.ndarray | None:
        if src is None:
            return None
        return src.plane(index, step=step) if axis == 0 else src.section(axis, index, step=step, z_step=z_step)

    xy = Section(display(image.read((slice(mz, mz + 1), *inplane)))[0], ids(labels, 0, mz), ids(instances, 0, mz))
    xz = Section(display(image.read((every_z, slice(my, my + 1), inplane[1])))[:, 0], ids(labels, 1, my),
                 ids(instances, 1, my))
    yz = Section(display(image.read((every_z, inplane[0], slice(mx, mx + 1))))[:, :, 0], ids(labels, 2, mx),
                 ids(instances, 2, mx))
    z_scale = z_step / step
    if voxel_size is not None:
        z_scale *= float(voxel_size[0]) / float(voxel_size[1])
    write_volume_preview(path, xy, xz, yz, z_scale=z_scale, cut=(mz // z_step, my // step, mx // step),
                         provenance=provenance)


def written_by_pointseg(path: Path) -> bool:
    """Whether an existing ``.labels.tif`` was written by ``pointseg segment`` (its OME description
    holds our JSON with the class names), as opposed to, say, a ground-truth mask of the same name."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            xml = tf.ome_metadata or ""
    except Exception:  # noqa: BLE001 - unreadable or not a TIFF: not ours
        return False
    start, end = xml.find("<Description>"), xml.find("</Description>")
    if start < 0 or end < start:
        return False
    from html import unescape

    try:
        data = json.loads(unescape(xml[start + len("<Description>") : end]))
    except ValueError:
        return False
    return isinstance(data, dict) and isinstance(data.get("classes"), list)
