"""Atomic writers: TIFF / OME-TIFF, OME-Zarr, PNG.

The voxel size (micrometres along the spatial axes) of an output is written as OME
``PhysicalSizeX/Y/Z`` in TIFFs and as the NGFF ``scale`` of OME-Zarr images
(:mod:`pointseg_cli.io.ome_zarr`); provenance and class names go into the OME ``Description``
(JSON) and the zarr group attributes.

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
from collections.abc import Iterator, Mapping, Sequence
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


def ome_physical_size(axes: str, voxel_size: Sequence[float] | None) -> dict[str, Any]:
    """tifffile OME metadata keys ``PhysicalSize{X,Y,Z}`` (+ unit µm) for the spatial axes of ``axes``.

    ``voxel_size`` lists micrometres per voxel along the spatial axes in the order they appear in
    ``axes`` (e.g. ``(z, y, x)`` for ``"CZYX"``); None gives no keys.
    """
    if voxel_size is None:
        return {}
    spatial = [a for a in axes.upper() if a in "ZYX"]
    if len(spatial) != len(voxel_size):
        raise ImageFormatError(f"voxel size needs {len(spatial)} values for axes {axes}; got {tuple(voxel_size)}")
    out: dict[str, Any] = {}
    for axis, size in zip(spatial, voxel_size, strict=True):
        out[f"PhysicalSize{axis}"] = float(size)
        out[f"PhysicalSize{axis}Unit"] = "µm"
    return out


def write_tiff(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str,
    compression: str | None = None,
    metadata: dict[str, Any] | None = None,
    voxel_size: Sequence[float] | None = None,
) -> Path:
    """Write ``data`` as an OME-TIFF with the given axes, atomically.

    Parameters
    ----------
    path : destination (``.tif``/``.tiff``; OME metadata is written whatever the suffix).
    data : array whose dimensions are described by ``axes`` (e.g. ``"ZYX"``, ``"CYX"``).
    compression : ``None``, ``"zlib"``, ``"zstd"``, ``"lzw"``... (tifffile names).
    metadata : extra key/values stored as JSON in the OME ``Description`` of the image (kept
        small: provenance, class names).
    voxel_size : micrometres per voxel along the spatial axes of ``axes``, in order; written as
        OME ``PhysicalSize*``.
    """
    import tifffile

    path = Path(path)
    axes = _check_axes(data, axes)
    if axes.endswith("C") and data.shape[-1] not in (3, 4):
        # Only RGB(A) is stored as interleaved samples; other channel counts go first as planes.
        data = np.moveaxis(data, -1, 0)
        axes = "C" + axes[:-1]
    meta: dict[str, Any] = {"axes": axes, **ome_physical_size(axes, voxel_size)}
    if metadata:
        meta["Description"] = json.dumps(metadata, default=str)
    with atomic_output(path) as tmp:
        tifffile.imwrite(tmp, data, ome=True, metadata=meta, compression=compression, photometric=_photometric(axes))
    return path


def _photometric(axes: str) -> str:
    return "rgb" if axes.endswith("XC") else "minisblack"


def write_zarr(
    path: str | Path,
    data: np.ndarray,
    *,
    axes: str,
    chunks: tuple[int, ...] | None = None,
    voxel_size: Sequence[float] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``data`` as a single-scale OME-Zarr image, atomically.

    The NGFF version matches the installed zarr (see :func:`pointseg_cli.io.ome_zarr.ngff_version`);
    ``voxel_size`` (µm along the spatial axes of ``axes``) becomes the dataset's ``scale``;
    ``attributes`` are extra group attributes (e.g. ``{"pointseg": provenance}``).
    """
    from pointseg_cli.io.ome_zarr import write_ome_zarr

    path = Path(path)
    axes = _check_axes(data, axes)
    with atomic_output(path) as tmp:
        write_ome_zarr(tmp, data, axes=axes, chunks=chunks or _default_chunks(data.shape), voxel_size=voxel_size,
                       attributes=attributes)
    return path


def _default_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(min(n, 256) if i >= len(shape) - 2 else min(n, 32) for i, n in enumerate(shape))


def save_png(path: str | Path, rgb: np.ndarray, *, text: Mapping[str, Any] | None = None) -> None:
    """Save an 8-bit ``(Y, X)`` or ``(Y, X, 3)`` array as PNG at ``path`` (not atomic by itself).

    ``text`` entries become PNG text chunks (values that are not strings are stored as JSON).
    """
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ImageFormatError(f"PNG preview expects uint8 (Y, X[, 3]); got {rgb.dtype} {rgb.shape}")
    info = PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value if isinstance(value, str) else json.dumps(value, default=str))
    PILImage.fromarray(rgb).save(path, format="PNG", pnginfo=info)


def write_png(path: str | Path, rgb: np.ndarray, *, text: Mapping[str, Any] | None = None) -> Path:
    """Write an 8-bit grayscale ``(Y, X)`` or RGB ``(Y, X, 3)`` array as PNG, atomically (see :func:`save_png`)."""
    path = Path(path)
    if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
        raise ImageFormatError(f"PNG preview expects uint8 (Y, X[, 3]); got {rgb.dtype} {rgb.shape}")
    with atomic_output(path) as tmp:
        save_png(tmp, rgb, text=text)
    return path
