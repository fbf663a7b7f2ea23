"""Lazy, region-wise reading of an opened image in canonical axis order (:class:`LazyImage`).

Whatever back-end holds the pixels (memory-mapped TIFF, zarr chunks, an in-memory PNG), every
failure while reading a region — a truncated strip, a corrupt chunk, a file that became
unreadable — surfaces as :class:`~pointseg_cli.errors.ImageReadError` naming the file, and so
do NaN or infinite pixels (never segmented as if they were valid).
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError, ImageReadError, PointsegError
from pointseg_cli.io.axes import ImageInfo

log = logging.getLogger(__name__)


@dataclass
class Opened:
    """An opened back-end: the pixel array-like, its metadata axes and the spacing found (µm per axis)."""

    array: Any
    meta_axes: str | None
    spacing: dict[str, float] = field(default_factory=dict)


class ArrayView:
    """An array-like over ``base`` that keeps the first ``keep`` entries of one axis, or maps
    palette indices through ``lut`` (a ``(n, 3)`` table) onto a new trailing colour axis."""

    def __init__(self, base: Any, *, axis: int | None = None, keep: int | None = None,
                 lut: np.ndarray | None = None) -> None:
        self.base = base
        self.axis, self.keep, self.lut = axis, keep, lut
        shape = list(base.shape)
        if lut is not None:
            shape.append(int(lut.shape[1]))
        elif axis is not None and keep is not None:
            shape[axis] = keep
        self.shape = tuple(shape)
        self.dtype = np.dtype(lut.dtype if lut is not None else base.dtype)
        self.ndim = len(shape)

    @property
    def _mmap(self) -> Any:  # so that LazyImage.release reaches a memory-mapped base
        return getattr(self.base, "_mmap", None)

    def __getitem__(self, index: tuple[Any, ...]) -> np.ndarray:
        index = tuple(index)
        if self.lut is not None:
            idx = np.asarray(self.base[index[:-1]])
            if idx.size and int(idx.max()) >= self.lut.shape[0]:
                raise ImageReadError(f"palette index {int(idx.max())} is outside the {self.lut.shape[0]}-colour map")
            return self.lut[idx][..., index[-1]]
        if self.axis is not None and self.keep is not None:
            part = index[self.axis]
            if isinstance(part, slice):
                part = slice(*part.indices(self.keep))
            index = (*index[: self.axis], part, *index[self.axis + 1:])
        return np.asarray(self.base[index])


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _reading_error(exc: BaseException, name: str) -> ImageReadError:
    if isinstance(exc, PermissionError):
        return ImageReadError(f"cannot read pixels of '{name}': permission denied")
    text = one_line(exc)
    return ImageReadError(f"cannot read pixels of '{name}' (truncated or corrupt file?): {text}")


class LazyImage:
    """A memory-mapped or chunk-wise readable image presented in canonical axis order.

    Use :meth:`read` to fetch a spatial region; nothing is loaded until then.
    """

    def __init__(self, path: Any, array: Any, info: ImageInfo) -> None:
        self.path = path
        self._array = array
        self.info = info

    @property
    def shape(self) -> tuple[int, ...]:
        return self.info.shape

    @property
    def axes(self) -> str:
        return self.info.axes

    @property
    def dtype(self) -> np.dtype:
        return self.info.dtype

    def _index(self, region: Sequence[slice]) -> tuple[tuple[Any, ...], list[str]]:
        spatial = self.info.spatial_axes
        if len(region) != len(spatial):
            raise ImageFormatError(
                f"region has {len(region)} slices but '{self.path.name}' has {len(spatial)} spatial axes"
            )
        by_axis = dict(zip(spatial, region, strict=True))
        index: list[Any] = []
        kept: list[str] = []
        for letter, n in zip(self.info.stored_axes, self.info.stored_shape, strict=True):
            if letter in by_axis:
                index.append(by_axis[letter])
                kept.append(letter)
            elif letter == "C" and n > 1:
                index.append(slice(None))
                kept.append(letter)
            else:
                index.append(0)  # singleton (or T == 1) dimension
        return tuple(index), kept

    def read(self, region: Sequence[slice] | None = None) -> np.ndarray:
        """Read a spatial region (one slice per spatial axis, canonical order) as a numpy array.

        Returns
        -------
        numpy.ndarray
            Canonical order ``([Z,] Y, X[, C])`` restricted to ``region``.

        Raises
        ------
        ImageReadError
            The pixels cannot be read (truncated strip, corrupt chunk, permission), or the region
            holds NaN or infinite values.
        """
        if region is None:
            region = tuple(slice(None) for _ in self.info.spatial_axes)
        index, kept = self._index(region)
        try:
            data = np.asarray(self._array[index])
        except (PointsegError, MemoryError):
            raise
        except Exception as exc:  # noqa: BLE001 - tifffile, zarr, codecs and the OS raise many kinds
            raise _reading_error(exc, self.path.name) from exc
        if data.dtype.kind == "f" and not np.isfinite(data).all():
            bad = int(data.size - np.count_nonzero(np.isfinite(data)))
            raise ImageReadError(
                f"'{self.path.name}' has {bad} NaN or infinite pixel value(s) in the region read; "
                "expected finite intensities — replace them (e.g. with 0) before running pointseg"
            )
        order = [kept.index(a) for a in self.info.axes]
        if order != list(range(len(order))):
            data = np.transpose(data, order)
        return np.ascontiguousarray(data)

    def subsample(self, max_elements: int = 1 << 22) -> np.ndarray:
        """A strided subsample in canonical order with at most about ``max_elements`` elements.

        Used for intensity statistics of volumes too large to read whole.
        """
        spatial = self.info.spatial_shape
        total = int(np.prod(spatial)) * self.info.channels
        if total <= max_elements:
            return self.read()
        step = int(np.ceil((total / max_elements) ** (1.0 / len(spatial))))
        # Keep in-plane strides small so that structures are still sampled fairly.
        region = tuple(slice(None, None, step) for _ in spatial)
        return self.read(region)

    def release(self) -> None:
        """Tell the OS that mapped pages read so far may be dropped (memory-mapped TIFFs only).

        Streaming readers call this after each slab so that resident memory stays bounded on
        volumes larger than RAM; it is a no-op for other back-ends and where unsupported.
        """
        mm = getattr(self._array, "_mmap", None)
        if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (OSError, ValueError) as exc:
                log.debug("madvise failed for %s: %s", self.path.name, exc)

    def __repr__(self) -> str:
        return f"LazyImage({self.info.describe()})"
