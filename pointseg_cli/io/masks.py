"""Mask (label image) files: how they are named, found, paired with images and read.

This is the one place that knows mask file names. A mask belongs to the image whose stem it
carries, followed by one of :data:`MASK_SUFFIXES`: for image ``a.tif`` (stem ``a``) the files
``a.labels.tif``, ``a_labels.tif``, ``a.masks.tif``, ``a_masks.tif``, ``a.mask.png``,
``a_mask.tif`` (any supported image format) are its mask. In a folder that holds masks only, a
plain ``a.tif`` is accepted as well; the image file itself is never taken as its own mask.

Every command that reads masks (``annotate-import --from-masks``, ``train --masks/--val-masks``,
``objectness --tune``, ``evaluate``) finds them through this module, so they accept the same names.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointseg_cli.errors import InputError
from pointseg_cli.io.images import find_images, image_stem, is_derived, read_image, read_info

log = logging.getLogger(__name__)

#: Name endings (before the file suffix) that mark a mask of image ``stem``; one is stripped.
MASK_SUFFIXES = (".labels", "_labels", ".masks", "_masks", ".mask", "_mask")

#: Instance ids above this are relabelled 1..N on reading (see :func:`read_labels`).
RELABEL_ABOVE = 2**16 - 1


def mask_stem(path: str | Path) -> str:
    """Stem of the image a mask belongs to: ``a.labels.tif`` → ``a``, ``a_mask.png`` → ``a``, ``a.tif`` → ``a``."""
    stem = image_stem(path)
    for suffix in MASK_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def is_mask_name(path: str | Path) -> bool:
    """True when the file name carries one of :data:`MASK_SUFFIXES` (``a.labels.tif``, ``a_mask.tif``...)."""
    return mask_stem(path) != image_stem(path)


def _listing(names: Sequence[str], limit: int = 5) -> str:
    names = sorted(names)
    more = f", … ({len(names)} in all)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more if names else "(none)"


def mask_files(inputs: str | Path | Sequence[str | Path], *, what: str = "mask") -> dict[str, Path]:
    """Masks in a folder (or files / globs), keyed by the stem of the image they belong to.

    If any file carries a mask suffix, only those files are used, so a folder holding images
    beside their masks works; otherwise every image file is a mask except other pointseg outputs
    (``*.objectness.tif`` and the like).

    Raises
    ------
    InputError
        Nothing found, or two masks for the same image (``a.labels.tif`` and ``a_mask.tif``).
    """
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    paths = find_images(items, include_derived=True)
    marked = [p for p in paths if is_mask_name(p)]
    chosen = marked or [p for p in paths if not is_derived(p)]
    if not chosen:
        raise InputError(f"'{', '.join(map(str, items))}' holds no {what}s")
    out: dict[str, Path] = {}
    for path in chosen:
        stem = mask_stem(path)
        if stem in out:
            raise InputError(f"two {what}s for '{stem}': '{out[stem].name}' and '{path.name}'")
        out[stem] = path
    return out


def _candidates(folder: Path) -> dict[str, list[Path]]:
    if not folder.is_dir():
        raise InputError(f"mask folder '{folder}' does not exist")
    by_stem: dict[str, list[Path]] = {}
    for path in find_images([folder], include_derived=True):
        by_stem.setdefault(mask_stem(path), []).append(path)
    return by_stem


def _pick(stem: str, paths: Sequence[Path], exclude: Path | None) -> Path | None:
    usable = [p for p in paths if exclude is None or p.resolve() != exclude.resolve()]
    marked = [p for p in usable if is_mask_name(p)]
    if len(marked) > 1:
        raise InputError(f"two masks for '{stem}': {' and '.join(repr(p.name) for p in marked)}")
    if marked:
        return marked[0]
    plain = [p for p in usable if not is_derived(p)]
    return plain[0] if plain else None


def find_mask(folder: str | Path, stem: str, *, exclude: str | Path | None = None) -> Path:
    """The mask of image ``stem`` in ``folder`` (see the module docstring for the names).

    Parameters
    ----------
    folder : folder holding the masks (may be the image folder itself).
    stem : image stem (``image_stem`` of the image file).
    exclude : the image file, never taken as its own mask.

    Raises
    ------
    InputError
        The folder does not exist, holds no mask for ``stem``, or holds two.
    """
    folder = Path(folder)
    found = _pick(stem, _candidates(folder).get(stem, ()), Path(exclude) if exclude is not None else None)
    if found is None:
        raise InputError(
            f"no mask for image '{stem}' in '{folder}' (expected e.g. {stem}.labels.tif or {stem}_mask.tif)"
        )
    return found


def find_masks(folder: str | Path, images: Sequence[str | Path]) -> dict[str, Path]:
    """Masks in ``folder`` for each of ``images`` (paths), keyed by image stem; images without one are left out."""
    by_stem = _candidates(Path(folder))
    out: dict[str, Path] = {}
    for image in images:
        stem = image_stem(image)
        found = _pick(stem, by_stem.get(stem, ()), Path(image))
        if found is not None:
            out[stem] = found
    return out


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Ids made consecutive ``1..N`` in their original order (0 stays background).

    Returns the smallest unsigned dtype that holds ``N`` (uint16 or uint32, uint64 beyond).
    """
    ids, inverse = np.unique(labels, return_inverse=True)
    n = int(ids.size - (ids[0] == 0)) if ids.size else 0
    dtype = np.uint16 if n <= 2**16 - 1 else np.uint32 if n <= 2**32 - 1 else np.uint64
    out = inverse.reshape(labels.shape).astype(dtype)
    if ids.size and ids[0] != 0:
        out += 1
    return out


def read_labels(path: str | Path, *, axes: str | None = None, instances: bool = False) -> np.ndarray:
    """Read a single-channel label image as integers, ``(Y, X)`` or ``(Z, Y, X)``.

    Parameters
    ----------
    path : label image file.
    axes : axes override (e.g. ``"ZYX"``).
    instances : the values are instance ids (not class ids): ids above :data:`RELABEL_ABOVE`
        (e.g. hashes up to ``2**32 - 1``) are relabelled ``1..N`` in their order, so code that
        sizes arrays by the largest id does not run out of memory.

    Raises
    ------
    InputError
        More than one channel, non-integer values or negative ids.
    """
    path = Path(path)
    info = read_info(path, axes=axes)
    if info.channels != 1:
        raise InputError(f"label image {info.describe()} has {info.channels} channels; expected one")
    data = read_image(path, axes=axes)
    if data.dtype.kind == "f":
        if not np.array_equal(data, np.round(data)):
            raise InputError(f"label image '{path.name}' has non-integer values; expected integer ids")
        data = data.astype(np.int64)
    elif data.dtype.kind == "b":
        data = data.astype(np.uint8)
    elif data.dtype.kind not in "iu":
        raise InputError(f"label image '{path.name}' has dtype {data.dtype}; expected integer ids")
    if data.size and data.dtype.kind == "i" and data.min() < 0:
        raise InputError(f"label image '{path.name}' has negative ids (min {data.min()}); expected ids >= 0")
    if instances and data.size and int(data.max()) > RELABEL_ABOVE:
        log.info("label image '%s': ids up to %d relabelled 1..N", path.name, int(data.max()))
        data = relabel_sequential(data)
    return data
