"""Reading images and volumes: TIFF / OME-TIFF, OME-Zarr / zarr, PNG / JPEG — the public entry points.

Every image is presented in one canonical axis order (``YX``, ``YXC``, ``ZYX``, ``ZYXC``; see
:mod:`pointseg_cli.io.axes`). Pixels are never loaded just to learn the shape: :func:`read_info`
reads metadata only and :func:`open_image` memory-maps uncompressed TIFFs or reads
compressed/tiled ones and zarr chunk-wise.

Where the parts live: finding inputs in :mod:`~pointseg_cli.io.discovery`, axes and
:class:`ImageInfo` in :mod:`~pointseg_cli.io.axes`, TIFF in :mod:`~pointseg_cli.io.tiff`, zarr in
:mod:`~pointseg_cli.io.zarr_image`, voxel sizes in :mod:`~pointseg_cli.io.voxel`, region reads in
:mod:`~pointseg_cli.io.lazy` and the (atomic) writers in :mod:`~pointseg_cli.io.writers`; all
public names are importable from here.

Every failure to read an image — at open time or while a region is read — is an
:class:`~pointseg_cli.errors.ImageReadError` (or another
:class:`~pointseg_cli.errors.ImageFormatError`) with one line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pointseg_cli.errors import ImageFormatError, ImageReadError, InputError
from pointseg_cli.io.axes import ImageInfo, make_info
from pointseg_cli.io.discovery import (
    DERIVED_MARKERS,
    IMAGE_SUFFIXES,
    PNG_SUFFIXES,
    TIFF_SUFFIXES,
    ZARR_SUFFIXES,
    find_images,
    image_stem,
    is_derived,
    suffix_of,
)
from pointseg_cli.io.lazy import LazyImage, Opened, one_line
from pointseg_cli.io.tiff import open_tiff
from pointseg_cli.io.writers import atomic_output, write_png, write_tiff, write_zarr
from pointseg_cli.io.zarr_image import open_zarr

__all__ = [
    "DERIVED_MARKERS", "IMAGE_SUFFIXES", "PNG_SUFFIXES", "TIFF_SUFFIXES", "ZARR_SUFFIXES",
    "ImageInfo", "LazyImage", "atomic_output", "find_images", "image_stem", "is_derived",
    "open_image", "read_image", "read_info", "write_png", "write_tiff", "write_zarr",
]

#: PIL modes converted on reading (palette → colours, gray+alpha → gray, RGBA → RGB, bilevel → 8 bit).
_PIL_CONVERT = {"P": "RGB", "PA": "RGB", "LA": "L", "La": "L", "RGBA": "RGB", "RGBa": "RGB", "1": "L",
                "YCbCr": "RGB"}
_PIL_REFUSED = {"CMYK": "CMYK", "LAB": "CIELab", "HSV": "HSV"}


def _open_pil(path: Path) -> Opened:
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as im:
            if im.mode in _PIL_REFUSED:
                raise ImageFormatError(
                    f"'{path.name}' is a {_PIL_REFUSED[im.mode]} image; expected grayscale or RGB — convert it first"
                )
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            target = _PIL_CONVERT.get(im.mode)
            data = np.asarray(im.convert(target) if target else im)
    except ImageFormatError:
        raise
    except PermissionError:
        raise ImageReadError(f"cannot read '{path.name}': permission denied") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for corrupt files
        raise ImageReadError(f"cannot read '{path.name}' as an image: {one_line(exc)}") from exc
    if data.ndim == 3 and data.shape[-1] == 4:
        data = data[..., :3]  # alpha is not an intensity channel
    return Opened(data, "YXC" if data.ndim == 3 else "YX")


def _open_backend(path: Path) -> Opened:
    suf = suffix_of(path)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise InputError(f"image '{path}' does not exist") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read '{path.name}': {exc.strerror or exc}") from None
    if suf in TIFF_SUFFIXES:
        return open_tiff(path)
    if suf in ZARR_SUFFIXES:
        return open_zarr(path)
    if suf in PNG_SUFFIXES:
        return _open_pil(path)
    raise InputError(f"'{path.name}' is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})")


def open_image(path: str | Path, *, axes: str | None = None) -> LazyImage:
    """Open an image lazily (memory-mapped TIFF, chunked zarr); pixels are read by :meth:`LazyImage.read`.

    Raises
    ------
    InputError
        The file does not exist or has an unsupported suffix.
    ImageReadError
        Truncated, corrupt or unreadable file (also raised later by :meth:`LazyImage.read`).
    ImageFormatError
        Axes cannot be told or do not match ``axes``; complex, CMYK or Lab pixels; a time series.
    """
    path = Path(path)
    opened = _open_backend(path)
    dtype = np.dtype(opened.array.dtype)
    if dtype.kind == "c":
        raise ImageFormatError(f"'{path.name}' has complex pixels ({dtype}); expected real intensities")
    if dtype.kind not in "biuf":
        raise ImageFormatError(f"'{path.name}' has pixels of type {dtype}; expected integer or float intensities")
    info = make_info(path, tuple(opened.array.shape), opened.meta_axes, dtype, axes, spacing=opened.spacing)
    return LazyImage(path, opened.array, info)


def read_info(path: str | Path, *, axes: str | None = None) -> ImageInfo:
    """Read an image's shape, dtype, axes and voxel size from its metadata without loading pixels.

    The voxel size (µm, spatial axes order) comes from OME-XML ``PhysicalSizeX/Y/Z`` (+ units),
    ImageJ's calibration (``unit``, X/Y resolution, ``spacing``) or the OME-Zarr scale of the
    full-resolution dataset (axes with a length unit); ``None`` when not recorded.
    """
    return open_image(path, axes=axes).info


def read_image(path: str | Path, *, axes: str | None = None) -> np.ndarray:
    """Read a whole image into memory in canonical order ``([Z,] Y, X[, C])``."""
    return open_image(path, axes=axes).read()
