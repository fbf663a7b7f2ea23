"""Incremental writers for segment outputs (labels, probabilities) and the preview overlay.

The writers fill a file at a *temporary* path row block by row block (a memory-mapped TIFF or a
zarr array); :func:`pointseg_cli.io.images.atomic_output` renames it once the image is complete.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Overlay colours for class ids 1.. (background is not coloured).
PALETTE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
    ],
    dtype=np.float32,
)


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
        Object class names, stored in the TIFF description for provenance.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], *, axes: str, classes: tuple[str, ...]) -> None:
        meta = {"axes": axes, "Description": json.dumps({"classes": ["background", *classes]})}
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

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ProbabilityWriter:
    """float16 probabilities ``(K+1, *spatial)`` into an uncompressed TIFF or a zarr array.

    TIFF: tifffile's shaped format (OME has no float16), axes ``CZYX``/``CYX`` in its description.
    zarr: an OME-Zarr (NGFF 0.4) single-scale image, chunked along the first spatial axis by ``chunk0``.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], *, axes: str, fmt: str, chunk0: int = 16) -> None:
        self._arr = None
        self._file: _RawTiff | None = None
        if fmt == "tif":
            self._file = _RawTiff(path, shape, np.dtype(np.float16), metadata={"axes": axes})
        else:
            import zarr

            root = zarr.open_group(str(path), mode="w")
            chunks = (1, min(shape[1], chunk0), *(min(s, 512) for s in shape[2:]))
            self._arr = root.create_array("0", shape=shape, dtype=np.float16, chunks=chunks)
            kinds = {"C": "channel", "Z": "space", "Y": "space", "X": "space"}
            root.attrs["multiscales"] = [
                {
                    "version": "0.4",
                    "axes": [{"name": a.lower(), "type": kinds[a]} for a in axes],
                    "datasets": [
                        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                    ],
                }
            ]

    def write(self, start: int, probs: np.ndarray) -> None:
        """Write ``probs`` ``(K+1, n, ...)`` at rows ``start : start + n`` of the first spatial axis."""
        if self._file is not None:
            for c in range(probs.shape[0]):
                self._file.write((c,), start, probs[c].astype(np.float16))
        elif self._arr is not None:
            self._arr[:, start : start + probs.shape[1]] = probs.astype(np.float16)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._arr = None


def overlay(plane: np.ndarray, labels: np.ndarray, *, alpha: float = 0.45, max_size: int = 1024) -> np.ndarray:
    """RGB uint8 overlay of class ids on a normalised image plane.

    Parameters
    ----------
    plane : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)`` intensities in ``[0, 1]`` (the first three channels are shown).
    labels : numpy.ndarray
        ``(Y, X)`` class ids.
    max_size : int
        Larger planes are subsampled with a stride so the preview stays small.
    """
    step = max(1, int(np.ceil(max(labels.shape) / max_size)))
    plane = plane[::step, ::step]
    labels = labels[::step, ::step]
    if plane.ndim == 2:
        rgb = np.repeat(plane[..., None], 3, axis=-1)
    elif plane.shape[-1] >= 3:
        rgb = plane[..., :3]
    else:
        rgb = np.concatenate([plane, np.zeros((*plane.shape[:2], 3 - plane.shape[-1]), plane.dtype)], axis=-1)
    rgb = np.clip(rgb, 0.0, 1.0).astype(np.float32) * 255.0
    mask = labels > 0
    if mask.any():
        colours = PALETTE[(labels[mask].astype(np.int64) - 1) % len(PALETTE)]
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * colours
    return np.round(rgb).astype(np.uint8)


def write_preview(path: Path, plane: np.ndarray, labels: np.ndarray) -> None:
    """Write the :func:`overlay` of ``labels`` on ``plane`` as a PNG at ``path`` (a temporary path)."""
    from PIL import Image as PILImage

    PILImage.fromarray(overlay(plane, labels)).save(path, format="PNG")
