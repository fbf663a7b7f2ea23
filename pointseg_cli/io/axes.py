"""Axes of stored images and the canonical order, and :class:`ImageInfo` (metadata without pixels).

Every image is presented in one *canonical* axis order: spatial axes first, channels last, and the
channel axis only when there is more than one channel — ``YX``, ``YXC``, ``ZYX`` or ``ZYXC``.

Axes come from, in order of preference:

1. the ``axes`` argument (the ``--axes`` option of every command), e.g. ``"CZYX"``;
2. the file's metadata (OME-TIFF, ImageJ hyperstack, tifffile's shaped metadata, OME-Zarr
   ``multiscales`` axes), where it names only T, Z, C, Y, X, S (RGB samples) axes;
3. the shape, after dropping axes of size 1:

   ======  =========================================================================
   ndim    rule
   ======  =========================================================================
   2       ``YX``
   3       ``YXC`` if the last axis has 3 or 4 entries (RGB / RGBA), else ``ZYX``
   4       ``ZYXC`` if the last axis has ≤ 4 entries, else ``ZCYX`` if the second axis
           has ≤ 8 entries, else ``CZYX`` if the first has ≤ 8, else an error
   ======  =========================================================================

A time axis of length > 1 is rejected (segment one time point at a time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError
from pointseg_cli.io.discovery import image_stem

KNOWN_AXES = set("TZCYXS")


def _infer_axes_from_shape(shape: tuple[int, ...], path: Path) -> str:
    nd = len(shape)
    if nd == 2:
        return "YX"
    if nd == 3:
        return "YXC" if shape[-1] in (3, 4) else "ZYX"
    if nd == 4:
        if shape[-1] <= 4:
            return "ZYXC"
        if shape[1] <= 8:
            return "ZCYX"
        if shape[0] <= 8:
            return "CZYX"
    raise ImageFormatError(
        f"cannot tell the axes of '{path.name}' with shape {shape}; pass --axes (e.g. ZCYX)"
    )


def _override_axes(override: str, stored_shape: tuple[int, ...], path: Path) -> str:
    axes = override.upper().replace("S", "C")
    if len(axes) != len(stored_shape):
        raise ImageFormatError(
            f"--axes {override!r} has {len(override)} letters but '{path.name}' has "
            f"{len(stored_shape)} dimensions {stored_shape}"
        )
    if set(axes) - set("TZCYX"):
        raise ImageFormatError(f"--axes may use only the letters T, Z, C, Y, X; got {override!r}")
    if len(set(axes)) != len(axes):
        raise ImageFormatError(f"--axes {override!r} repeats a letter")
    return axes


def resolve_axes(stored_shape: tuple[int, ...], meta_axes: str | None, override: str | None, path: Path) -> str:
    """Return an axes string (letters from TZCYX) with one letter per stored dimension."""
    if override:
        return _override_axes(override, stored_shape, path)
    if meta_axes and len(meta_axes) == len(stored_shape) and set(meta_axes) <= KNOWN_AXES:
        axes = meta_axes.replace("S", "C")
        # tifffile reports a lone RGB page as YXS and grayscale stacks as IYX/QYX (handled below).
        if len(set(axes)) == len(axes):
            return axes
    # Unknown letters (tifffile's Q/I for plain multi-page files): drop singleton dims, use shape.
    keep = [i for i, n in enumerate(stored_shape) if n > 1]
    squeezed = tuple(stored_shape[i] for i in keep)
    if len(squeezed) < 2:
        raise ImageFormatError(f"'{path.name}' has shape {stored_shape}; expected at least 2 dimensions > 1")
    sub = _infer_axes_from_shape(squeezed, path)
    axes = ["T"] * len(stored_shape)  # placeholders for singleton dims, dropped later
    for letter, i in zip(sub, keep, strict=True):
        axes[i] = letter
    # give singleton placeholders distinct unused letters so the string stays unique
    spare = [c for c in "TZC" if c not in sub]
    for i in range(len(axes)):
        if i not in keep:
            if not spare:
                raise ImageFormatError(f"cannot tell the axes of '{path.name}' with shape {stored_shape}; pass --axes")
            axes[i] = spare.pop(0)
    return "".join(axes)


@dataclass(frozen=True)
class ImageInfo:
    """What is known about an image without reading its pixels.

    Attributes
    ----------
    path, stem : the file and its name without the image suffix.
    stored_shape, stored_axes : shape and axes (letters TZCYX) as stored in the file.
    dtype : pixel type.
    axes, shape : canonical axes (``YX``, ``YXC``, ``ZYX``, ``ZYXC``) and shape.
    voxel_size : physical size of one pixel/voxel in micrometres along the spatial axes
        (``(z, y, x)`` or ``(y, x)``, the order of :attr:`spatial_axes`), or ``None`` when the file
        does not record it (see :func:`pointseg_cli.io.images.read_info` for the sources).
    """

    path: Path
    stem: str
    stored_shape: tuple[int, ...]
    stored_axes: str
    dtype: np.dtype
    axes: str
    shape: tuple[int, ...]
    voxel_size: tuple[float, ...] | None = None

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return 3 if "Z" in self.axes else 2

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return self.shape[: self.ndim]

    @property
    def channels(self) -> int:
        return self.shape[-1] if self.axes.endswith("C") else 1

    @property
    def spatial_axes(self) -> str:
        return self.axes[: self.ndim]

    def describe(self) -> str:
        """Short text such as ``'a.tif' ZYX (64, 512, 512) uint16``."""
        return f"'{self.path.name}' {self.axes} {self.shape} {self.dtype}"


def _canonical(stored_shape: tuple[int, ...], stored_axes: str, path: Path) -> tuple[str, tuple[int, ...]]:
    sizes = dict(zip(stored_axes, stored_shape, strict=True))
    if sizes.get("T", 1) > 1:
        raise ImageFormatError(
            f"'{path.name}' is a time series ({sizes['T']} time points, axes {stored_axes}); "
            "expected a single time point — split it first"
        )
    for needed in "YX":
        if needed not in sizes:
            raise ImageFormatError(f"'{path.name}' has axes {stored_axes}; expected both Y and X axes")
    axes = ""
    shape: list[int] = []
    if sizes.get("Z", 1) > 1:
        axes += "Z"
        shape.append(sizes["Z"])
    axes += "YX"
    shape += [sizes["Y"], sizes["X"]]
    if sizes.get("C", 1) > 1:
        axes += "C"
        shape.append(sizes["C"])
    return axes, tuple(shape)


def make_info(
    path: Path,
    stored_shape: tuple[int, ...],
    meta_axes: str | None,
    dtype: Any,
    override: str | None,
    *,
    spacing: Mapping[str, float] | None = None,
) -> ImageInfo:
    """Build an :class:`ImageInfo`; ``spacing`` maps axis letters to micrometres (from metadata)."""
    stored_shape = tuple(int(s) for s in stored_shape)
    stored_axes = resolve_axes(stored_shape, meta_axes, override, path)
    axes, shape = _canonical(stored_shape, stored_axes, path)
    voxel = None
    if spacing:
        spatial = axes[: 3 if "Z" in axes else 2]
        sizes = [spacing.get(a) for a in spatial]
        if all(s is not None and np.isfinite(s) and s > 0 for s in sizes):
            voxel = tuple(float(s) for s in sizes)  # type: ignore[arg-type]
    return ImageInfo(
        path=path, stem=image_stem(path), stored_shape=stored_shape, stored_axes=stored_axes,
        dtype=np.dtype(dtype), axes=axes, shape=shape, voxel_size=voxel,
    )
