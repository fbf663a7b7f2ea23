"""Opening TIFF / OME-TIFF / ImageJ TIFF files without reading pixels, refusing broken ones early.

A file is checked when it is opened: tifffile's complaints about page or value offsets (a file
cut short) are turned into :class:`~pointseg_cli.errors.ImageReadError` instead of silently
yielding fewer pages; every page's strips or tiles must lie inside the file; the number of pages
must match the series shape. So a truncated multi-page TIFF is never read as its first page.
Palette images are expanded to their colours, alpha samples are dropped, CMYK/CIELab refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError, ImageReadError
from pointseg_cli.io.axes import KNOWN_AXES
from pointseg_cli.io.lazy import ArrayView, Opened, one_line
from pointseg_cli.io.voxel import imagej_spacing, ome_spacing

log = logging.getLogger(__name__)

#: Words in tifffile's error log records that mean the file is cut short or damaged.
_DAMAGE = ("offset", "corrupt", "truncat", "failed to reshape", "failed to read")
_ALPHA = (1, 2)  # EXTRASAMPLE.ASSOCALPHA, UNASSALPHA
_REFUSED = {5: "CMYK (separated)", 8: "CIELab", 9: "ICCLab", 10: "ITULab"}


class _Capture(logging.Filter):
    """Collect (and silence) tifffile's log records emitted by this thread while opening a file."""

    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()
        self.damage: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        text = record.getMessage()
        if record.levelno >= logging.ERROR and any(word in text.lower() for word in _DAMAGE):
            self.damage.append(text)
        log.debug("tifffile: %s", text)
        return False


@contextlib.contextmanager
def _captured() -> Iterator[_Capture]:
    logger = logging.getLogger("tifffile")
    capture = _Capture()
    logger.addFilter(capture)
    try:
        yield capture
    finally:
        logger.removeFilter(capture)


def _damage_text(name: str, messages: list[str], size: int) -> str:
    found = re.search(r"offset (\d+)", messages[0])
    if found and int(found.group(1)) >= size:
        return f"'{name}' is truncated: expected data at byte {found.group(1)}, the file has {size} bytes"
    text = re.sub(r"<[^>]*>\s*", "", messages[0]).replace("raised TiffFileError(", "").strip(" )'\"")
    return f"'{name}' is truncated or corrupt: {text} (the file has {size} bytes)"


def _check_pages(tf: Any, series: Any, name: str, size: int) -> None:
    page_shape = tuple(series.keyframe.shape) if getattr(series, "keyframe", None) is not None else None
    if page_shape:
        expected = int(np.prod(series.shape)) // max(1, int(np.prod(page_shape)))
        found = len(tf.pages) if len(tf.series) == 1 else len(getattr(series, "pages", ()))
        if found < expected:
            raise ImageReadError(
                f"'{name}' is truncated: expected {expected} pages of {page_shape}, found {found}"
            )
    for i, page in enumerate(tf.pages):
        if page is None:
            continue
        ends = [int(o) + int(c) for o, c in zip(page.dataoffsets, page.databytecounts, strict=False) if c]
        if ends and max(ends) > size:
            raise ImageReadError(
                f"'{name}' is truncated: page {i + 1} needs {max(ends)} bytes, the file has {size}"
            )


def _contiguous_fits(page: Any, images: int, size: int) -> bool:
    """ImageJ writes one IFD for files over 4 GB: the other images follow the first contiguously."""
    if int(page.compression) != 1 or not page.dataoffsets:
        return False
    return int(page.dataoffsets[0]) + images * int(page.nbytes) <= size


def _series_axes(series: Any) -> str | None:
    axes = getattr(series, "axes", None)
    if not axes or any(c not in KNOWN_AXES for c in axes):
        return None
    return axes


def _palette(colormap: np.ndarray) -> np.ndarray:
    lut = np.asarray(colormap).T  # (n, 3)
    if lut.max() < 256:
        return lut.astype(np.uint8)
    if not (lut % 257).any():
        return (lut // 257).astype(np.uint8)
    return lut.astype(np.uint16)


def _spacing(tf: Any, page: Any) -> dict[str, float]:
    try:
        if tf.is_ome:
            return ome_spacing(tf.ome_metadata)
        if tf.is_imagej:
            tags = page.tags
            xres = tags.get("XResolution")
            yres = tags.get("YResolution")
            return imagej_spacing(
                tf.imagej_metadata, xres.value if xres else None, yres.value if yres else None
            )
    except Exception as exc:  # noqa: BLE001 - metadata is optional; a damaged tag only loses the spacing
        log.debug("no voxel size from %s: %s", getattr(tf, "filename", "?"), exc)
    return {}


def _inspect(path: Path) -> tuple[tuple[int, ...], str | None, Any, dict[str, float]]:
    """Open, validate and describe the first series: (shape, axes, view factory args, spacing)."""
    import tifffile

    name = path.name
    size = os.stat(path).st_size
    with _captured() as capture, tifffile.TiffFile(path) as tf:
        if not tf.series:
            raise ImageReadError(f"'{name}' holds no image data")
        series = tf.series[0]
        shape = tuple(int(s) for s in series.shape)
        axes = _series_axes(series)
        page = series.keyframe
        ij_images = (tf.imagej_metadata or {}).get("images") if tf.is_imagej else None
        if isinstance(ij_images, int) and ij_images > len(tf.pages) and not _contiguous_fits(page, ij_images, size):
            raise ImageReadError(
                f"'{name}' is truncated: expected {ij_images} pages (ImageJ metadata), found {len(tf.pages)}"
            )
        if capture.damage:
            raise ImageReadError(_damage_text(name, capture.damage, size))
        _check_pages(tf, series, name, size)
        photometric = int(page.photometric)
        if photometric in _REFUSED:
            raise ImageFormatError(
                f"'{name}' is a {_REFUSED[photometric]} image; expected grayscale or RGB — convert it first"
            )
        view: dict[str, Any] = {}
        if photometric == 3 and page.colormap is not None:  # palette: expand indices to colours
            view = {"lut": _palette(page.colormap)}
            axes = axes + "S" if axes else None
        elif axes and "S" in axes and any(int(e) in _ALPHA for e in page.extrasamples):
            colour = int(page.samplesperpixel) - len(page.extrasamples)
            view = {"axis": axes.index("S"), "keep": max(1, colour)}
        spacing = _spacing(tf, page)
    return shape, axes, view, spacing


def _unreadable(path: Path, exc: BaseException) -> ImageReadError:
    return ImageReadError(f"cannot read '{path.name}' as TIFF (truncated or corrupt file?): {one_line(exc)}")


def _zarr_view(path: Path) -> Any:
    import tifffile
    import zarr

    try:
        with _captured():
            store = tifffile.imread(path, aszarr=True)
            arr = zarr.open(store, mode="r")
        return arr if hasattr(arr, "shape") else arr["0"]
    except Exception as exc:  # noqa: BLE001
        raise _unreadable(path, exc) from exc


def open_tiff(path: Path) -> Opened:
    """Open a TIFF lazily: memory-mapped when uncompressed and contiguous, else chunk-wise via zarr.

    Raises
    ------
    ImageReadError
        The file is truncated, corrupt or cannot be read (one line naming the file).
    ImageFormatError
        CMYK or Lab colour spaces.
    """
    import tifffile

    try:
        shape, axes, view, spacing = _inspect(path)
    except (ImageFormatError, MemoryError):
        raise
    except PermissionError:
        raise ImageReadError(f"cannot read '{path.name}': permission denied") from None
    except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds for corrupt files
        raise _unreadable(path, exc) from exc
    try:
        with _captured():
            arr: Any = tifffile.memmap(path, mode="r")
        if tuple(arr.shape) != shape:
            arr = arr.reshape(shape)
    except Exception:  # noqa: BLE001 - not memory-mappable (compressed, tiled): read via zarr
        arr = _zarr_view(path)
        if tuple(arr.shape) != shape:
            raise ImageReadError(
                f"'{path.name}': expected a series of shape {shape}, found {tuple(arr.shape)}"
            ) from None
    if view:
        arr = ArrayView(arr, **view)
    return Opened(arr, axes, spacing)
