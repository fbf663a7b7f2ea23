"""Opening zarr arrays and OME-Zarr (NGFF) images without reading pixels.

The full-resolution dataset of the first ``multiscales`` entry is used; its axes and
``coordinateTransformations`` give the axis letters and the voxel size. A malformed store (no
arrays, bad or inconsistent ``multiscales``, a dataset path that is missing) is refused with one
line naming the file; chunks that cannot be read fail later, region by region, through
:class:`~pointseg_cli.io.lazy.LazyImage`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pointseg_cli.errors import ImageFormatError, ImageReadError
from pointseg_cli.io.lazy import Opened, one_line
from pointseg_cli.io.voxel import ngff_spacing

log = logging.getLogger(__name__)


def _bad(path: Path, what: str) -> ImageReadError:
    return ImageReadError(f"'{path.name}' is not a valid OME-Zarr image: {what}")


def _axes_letters(axes_meta: Any, ndim: int, path: Path) -> str | None:
    if not axes_meta:
        return None
    if not isinstance(axes_meta, list):
        raise _bad(path, f"'axes' must be a list; found {type(axes_meta).__name__}")
    names = []
    for a in axes_meta:
        name = a.get("name") if isinstance(a, dict) else a
        if not isinstance(name, str) or not name:
            raise _bad(path, f"an axis has no name: {a!r}")
        names.append(name)
    if len(names) != ndim:
        raise _bad(path, f"'axes' names {len(names)} axes but the dataset has {ndim} dimensions")
    letters = "".join(n[0].upper() for n in names)
    return letters if len(set(letters)) == len(letters) else None


def _multiscale_array(node: Any, multiscales: Any, path: Path) -> Opened:
    if not isinstance(multiscales, list) or not isinstance(multiscales[0], dict):
        raise _bad(path, "'multiscales' must be a list of objects")
    ms = multiscales[0]
    datasets = ms.get("datasets")
    if not isinstance(datasets, list) or not datasets or not isinstance(datasets[0], dict):
        raise _bad(path, "'multiscales' has no 'datasets' list")
    dataset = datasets[0].get("path")
    if not isinstance(dataset, str) or not dataset:
        raise _bad(path, "the first dataset has no 'path'")
    try:
        array = node[dataset]
    except Exception:  # noqa: BLE001 - KeyError / FileNotFoundError / zarr errors by version
        raise _bad(path, f"dataset {dataset!r} named in 'multiscales' is missing") from None
    if not hasattr(array, "shape"):
        raise _bad(path, f"dataset {dataset!r} is a group, not an array")
    axes = _axes_letters(ms.get("axes"), len(array.shape), path)
    try:
        spacing = ngff_spacing(ms, ms.get("axes"))
    except Exception as exc:  # noqa: BLE001 - optional metadata: a malformed scale only loses the spacing
        log.debug("no voxel size from %s: %s", path.name, exc)
        spacing = {}
    return Opened(array, axes, spacing)


def open_zarr(path: Path) -> Opened:
    """Open a zarr array or the full-resolution array of an OME-Zarr image."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except PermissionError:
        raise ImageReadError(f"cannot read '{path.name}': permission denied") from None
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds of errors for bad stores
        raise ImageReadError(f"cannot open '{path.name}' as zarr: {one_line(exc)}") from exc
    if hasattr(node, "shape"):
        return Opened(node, None)
    try:
        attrs = dict(node.attrs)
    except Exception as exc:  # noqa: BLE001 - unreadable .zattrs / zarr.json
        raise _bad(path, f"its attributes cannot be read ({one_line(exc)})") from exc
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales") if isinstance(ome, dict) else None
    if multiscales is not None and multiscales != []:
        return _multiscale_array(node, multiscales, path)
    try:
        arrays = sorted(name for name, _ in node.arrays())
    except Exception as exc:  # noqa: BLE001
        raise _bad(path, f"its arrays cannot be listed ({one_line(exc)})") from exc
    if not arrays:
        raise ImageFormatError(f"zarr group '{path.name}' holds no arrays and no OME multiscales metadata")
    return Opened(node[arrays[0]], None)
