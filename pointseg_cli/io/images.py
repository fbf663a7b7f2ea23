"""Reading and writing images and volumes: TIFF / OME-TIFF, OME-Zarr / zarr, PNG.

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

A time axis of length > 1 is rejected (segment one time point at a time). Pixels are never
loaded just to learn the shape: :func:`read_info` reads metadata only and :func:`open_image`
memory-maps uncompressed TIFFs or reads compressed/tiled ones chunk-wise through zarr.

Writers live in :mod:`pointseg_cli.io.writers` (all atomic) and are re-exported here.
"""

from __future__ import annotations

import glob
import logging
import mmap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError, InputError
from pointseg_cli.io.writers import atomic_output, write_png, write_tiff, write_zarr

log = logging.getLogger(__name__)

__all__ = [
    "IMAGE_SUFFIXES", "ImageInfo", "LazyImage", "atomic_output", "find_images", "image_stem", "is_derived",
    "open_image", "read_image", "read_info", "write_png", "write_tiff", "write_zarr",
]

TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
ZARR_SUFFIXES = (".ome.zarr", ".zarr")
PNG_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + ZARR_SUFFIXES + PNG_SUFFIXES

#: Name parts of files that pointseg itself writes; folder listings skip them by default.
DERIVED_MARKERS = (".labels", ".objectness", ".regions", ".background", ".probabilities", ".classes", ".preview")

_KNOWN_AXES = set("TZCYXS")


def _suffix_of(path: Path) -> str:
    name = path.name.lower()
    for suf in IMAGE_SUFFIXES:
        if name.endswith(suf):
            return suf
    return ""


def image_stem(path: str | Path) -> str:
    """File name without its image suffix: ``a.ome.tif`` → ``a``, ``b.labels.tif`` → ``b.labels``."""
    path = Path(path)
    suf = _suffix_of(path)
    return path.name[: len(path.name) - len(suf)] if suf else path.stem


def is_derived(path: str | Path) -> bool:
    """True for names pointseg writes as outputs (``x.labels.tif``, ``x.objectness.tif``, ...)."""
    stem = image_stem(path)
    return any(stem.endswith(marker) for marker in DERIVED_MARKERS)


def find_images(inputs: Sequence[str | Path], *, include_derived: bool = False) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of image paths.

    Folders are listed non-recursively; a ``.zarr`` folder is itself an image. Files pointseg
    writes (``*.labels.tif`` and the like) are skipped in folder and glob listings unless
    ``include_derived``; a file named explicitly is always kept.

    Raises
    ------
    InputError
        If an explicit path does not exist, has an unsupported suffix, or nothing was found.
    """
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text))]
            matches = [m for m in matches if _suffix_of(m) and (include_derived or not is_derived(m))]
            if not matches:
                raise InputError(f"pattern {text!r} matched no image files (expected {', '.join(IMAGE_SUFFIXES)})")
            found.extend(matches)
            continue
        path = Path(text)
        if not path.exists():
            raise InputError(f"input {text!r} does not exist")
        if path.is_dir() and not _suffix_of(path):
            entries = [
                p
                for p in sorted(path.iterdir())
                if _suffix_of(p) and not p.name.startswith(".") and (include_derived or not is_derived(p))
            ]
            if not entries:
                raise InputError(
                    f"folder {text!r} holds no image files (expected {', '.join(IMAGE_SUFFIXES)})"
                )
            found.extend(entries)
        elif _suffix_of(path):
            found.append(path)
        else:
            raise InputError(
                f"input {text!r} is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})"
            )
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(str(p.resolve()), p)
    return sorted(unique.values(), key=lambda p: str(p))


# --------------------------------------------------------------------------------------------
# axes


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


def _resolve_axes(stored_shape: tuple[int, ...], meta_axes: str | None, override: str | None, path: Path) -> str:
    """Return an axes string (letters from TZCYX) with one letter per stored dimension."""
    if override:
        axes = override.upper().replace("S", "C")
        if len(axes) != len(stored_shape):
            raise ImageFormatError(
                f"--axes {override!r} has {len(override)} letters but '{path.name}' has "
                f"{len(stored_shape)} dimensions {stored_shape}"
            )
        bad = set(axes) - set("TZCYX")
        if bad:
            raise ImageFormatError(f"--axes may use only the letters T, Z, C, Y, X; got {override!r}")
        if len(set(axes)) != len(axes):
            raise ImageFormatError(f"--axes {override!r} repeats a letter")
        return axes
    if meta_axes and len(meta_axes) == len(stored_shape) and set(meta_axes) <= _KNOWN_AXES:
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
    """

    path: Path
    stem: str
    stored_shape: tuple[int, ...]
    stored_axes: str
    dtype: np.dtype
    axes: str
    shape: tuple[int, ...]

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


def _make_info(path: Path, stored_shape: tuple[int, ...], meta_axes: str | None, dtype: Any, override: str | None):
    stored_axes = _resolve_axes(tuple(int(s) for s in stored_shape), meta_axes, override, path)
    axes, shape = _canonical(tuple(stored_shape), stored_axes, path)
    return ImageInfo(
        path=path,
        stem=image_stem(path),
        stored_shape=tuple(int(s) for s in stored_shape),
        stored_axes=stored_axes,
        dtype=np.dtype(dtype),
        axes=axes,
        shape=shape,
    )


# --------------------------------------------------------------------------------------------
# format back-ends


def _tiff_series_axes(series: Any) -> str | None:
    axes = getattr(series, "axes", None)
    if not axes or any(c not in _KNOWN_AXES for c in axes):
        return None
    return axes


def _zarr_group_array(path: Path) -> tuple[Any, str | None]:
    """Open a zarr array or the full-resolution array of an OME-Zarr image; return (array, axes)."""
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # noqa: BLE001 - zarr raises many kinds of errors for bad stores
        raise ImageFormatError(f"cannot open '{path.name}' as zarr: {exc}") from exc
    if hasattr(node, "shape"):
        return node, None
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)
    multiscales = ome.get("multiscales")
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        if not arrays:
            raise ImageFormatError(f"zarr group '{path.name}' holds no arrays and no OME multiscales metadata")
        return node[arrays[0]], None
    ms = multiscales[0]
    dataset = ms["datasets"][0]["path"]
    axes_meta = ms.get("axes")
    axes = None
    if axes_meta:
        names = [a["name"] if isinstance(a, dict) else str(a) for a in axes_meta]
        axes = "".join(n[0].upper() for n in names)
    return node[dataset], axes


def _open_backend(path: Path) -> tuple[Any, str | None, bool]:
    """Return (array-like, metadata axes, is_numpy_memmap)."""
    suf = _suffix_of(path)
    if not path.exists():
        raise InputError(f"image '{path}' does not exist")
    if suf in TIFF_SUFFIXES:
        import tifffile

        try:
            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                meta_axes = _tiff_series_axes(series)
                shape = tuple(series.shape)
        except Exception as exc:  # noqa: BLE001 - tifffile raises many kinds for corrupt files
            raise ImageFormatError(f"cannot read '{path.name}' as TIFF: {exc}") from exc
        try:
            arr = tifffile.memmap(path, mode="r")
            if tuple(arr.shape) != shape:
                arr = arr.reshape(shape)
            return arr, meta_axes, True
        except Exception:  # noqa: BLE001 - not memory-mappable (compressed, tiled): read via zarr
            store = tifffile.imread(path, aszarr=True)
            import zarr

            arr = zarr.open(store, mode="r")
            if not hasattr(arr, "shape"):
                arr = arr["0"]
            return arr, meta_axes, False
    if suf in ZARR_SUFFIXES:
        arr, axes = _zarr_group_array(path)
        return arr, axes, False
    if suf in PNG_SUFFIXES:
        from PIL import Image as PILImage

        try:
            with PILImage.open(path) as im:
                data = np.asarray(im)
        except Exception as exc:  # noqa: BLE001
            raise ImageFormatError(f"cannot read '{path.name}' as an image: {exc}") from exc
        if data.ndim == 3 and data.shape[-1] == 4:
            data = data[..., :3]  # alpha is not an intensity channel
        return data, "YXC" if data.ndim == 3 else "YX", True
    raise InputError(f"'{path.name}' is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})")


def read_info(path: str | Path, *, axes: str | None = None) -> ImageInfo:
    """Read an image's shape, dtype and axes from its metadata without loading pixels."""
    return open_image(path, axes=axes).info


class LazyImage:
    """A memory-mapped or chunk-wise readable image presented in canonical axis order.

    Use :meth:`read` to fetch a spatial region; nothing is loaded until then.
    """

    def __init__(self, path: Path, array: Any, info: ImageInfo) -> None:
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
        """
        if region is None:
            region = tuple(slice(None) for _ in self.info.spatial_axes)
        index, kept = self._index(region)
        data = np.asarray(self._array[index])
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


def open_image(path: str | Path, *, axes: str | None = None) -> LazyImage:
    """Open an image lazily (memory-mapped TIFF, chunked zarr); pixels are read by :meth:`LazyImage.read`."""
    path = Path(path)
    array, meta_axes, _ = _open_backend(path)
    info = _make_info(path, tuple(array.shape), meta_axes, array.dtype, axes)
    return LazyImage(path, array, info)


def read_image(path: str | Path, *, axes: str | None = None) -> np.ndarray:
    """Read a whole image into memory in canonical order ``([Z,] Y, X[, C])``."""
    return open_image(path, axes=axes).read()
