"""Atomic writers: TIFF / OME-TIFF, OME-Zarr, PNG.

Every file pointseg writes goes to a hidden temporary name (``.name.tmp-<pid>-<random>``) in the
destination folder and is renamed over the final name only once complete, so a killed process
leaves no partial output and a batch can be resumed by running it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary name starts with a dot and lives in the same folder, so the final rename is
    atomic on POSIX file systems. On any exception (including ``KeyboardInterrupt``) the temporary
    file or folder is removed and nothing appears under the final name. An existing ``path`` is
    replaced only at the very end.
    """
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        raise RuntimeError(f"atomic_output: nothing was written to the temporary path for '{path}'")
    if tmp.is_dir():
        if path.exists():
            trash = _temp_sibling(path)
            os.replace(path, trash)
            os.replace(tmp, path)
            _remove(trash)
        else:
            os.replace(tmp, path)
    else:
        os.replace(tmp, path)


def _check_axes(data: np.ndarray, axes: str) -> str:
    axes = axes.upper()
    if len(axes) != data.ndim:
        raise ImageFormatError(f"axes {axes!r} do not match array shape {data.shape}")
    return axes


def write_tiff(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str,
    compression: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``data`` as an OME-TIFF with the given axes, atomically.

    Parameters
    ----------
    path : destination (``.tif``/``.tiff``; OME metadata is written whatever the suffix).
    data : array whose dimensions are described by ``axes`` (e.g. ``"ZYX"``, ``"CYX"``).
    compression : ``None``, ``"zlib"``, ``"zstd"``, ``"lzw"``... (tifffile names).
    metadata : extra key/values stored as JSON in the TIFF ``ImageDescription``-adjacent
        ``Software`` tag-free OME annotation (kept small: provenance, class names).
    """
    import tifffile

    path = Path(path)
    axes = _check_axes(data, axes)
    if axes.endswith("C") and data.shape[-1] not in (3, 4):
        # Only RGB(A) is stored as interleaved samples; other channel counts go first as planes.
        data = np.moveaxis(data, -1, 0)
        axes = "C" + axes[:-1]
    meta: dict[str, Any] = {"axes": axes}
    if metadata:
        meta["Description"] = json.dumps(metadata, default=str)
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, data, ome=True, metadata=meta, compression=compression, photometric=_photometric(axes))
    return path


def _photometric(axes: str) -> str:
    return "rgb" if axes.endswith("XC") else "minisblack"


def write_zarr(path: str | Path, data: np.ndarray, *, axes: str, chunks: tuple[int, ...] | None = None) -> Path:
    """Write ``data`` as a single-scale OME-Zarr image (NGFF ``multiscales`` metadata), atomically."""
    import zarr

    path = Path(path)
    axes = _check_axes(data, axes)
    kinds = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
    with atomic_output(path) as tmp:
        root = zarr.open_group(str(tmp), mode="w")
        arr = root.create_array("0", shape=data.shape, dtype=data.dtype, chunks=chunks or _default_chunks(data.shape))
        arr[...] = data
        root.attrs["multiscales"] = [
            {
                "version": "0.4",
                "axes": [{"name": a.lower(), "type": kinds[a]} for a in axes],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0] * len(axes)}]}
                ],
            }
        ]
    return path


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(n, 256) if i >= len(shape) - 2 else min(n, 32) for i, n in enumerate(shape))


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an 8-bit grayscale ``(Y, X)`` or RGB ``(Y, X, 3)`` array as PNG, atomically."""
    from PIL import Image as PILImage

    path = Path(path)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ImageFormatError(f"PNG preview expects uint8 (Y, X[, 3]); got {rgb.dtype} {rgb.shape}")
    with atomic_output(path) as tmp:
        PILImage.fromarray(rgb).save(tmp, format="PNG")
    return path
