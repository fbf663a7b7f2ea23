"""Finding input images: suffixes, stems, pointseg's own output names, folders and glob patterns.

Rules (documented for users in ``docs/formats.md``):

* Folders are listed non-recursively; a ``.zarr`` folder is itself an image; hidden files are
  skipped.
* Names pointseg writes (``x.labels.tif``, ``x.instances.tif``, ``x.probabilities.tif|zarr``,
  ``x.preview.png``, ``x.objectness.tif``, ``x.regions.tif``, ``x.background.tif``,
  ``x.classes.tif``) are never taken from a folder or a glob pattern. A list of files that mixes
  such names with other images (what the shell makes of an unquoted ``*.tif``) drops them too;
  a pointseg output named on its own (or only outputs named) is used as asked.
* FIFOs, devices and sockets are never opened: skipped with a warning in folders and patterns,
  an error when named explicitly. Symbolic-link loops and unreadable folders give one line.
* Two inputs with the same stem (``a/x.tif`` and ``b/x.tif``, or ``x.tif`` and ``x.ome.tif``)
  would write the same outputs: an :class:`~pointseg_cli.errors.InputError` naming both.
"""

from __future__ import annotations

import errno
import glob
import logging
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from pointseg_cli.errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "DERIVED_MARKERS", "IMAGE_SUFFIXES", "PNG_SUFFIXES", "TIFF_SUFFIXES", "ZARR_SUFFIXES",
    "find_images", "image_stem", "is_derived", "suffix_of",
]

TIFF_SUFFIXES = (".ome.tiff", ".ome.tif", ".tiff", ".tif")
ZARR_SUFFIXES = (".ome.zarr", ".zarr")
PNG_SUFFIXES = (".png", ".jpg", ".jpeg")
IMAGE_SUFFIXES = TIFF_SUFFIXES + ZARR_SUFFIXES + PNG_SUFFIXES

#: Name parts of files that pointseg itself writes; listings never take them as inputs.
# Non-image files pointseg writes beside images (``segment``'s object table).
TABLE_OUTPUT_SUFFIXES = (".objects.csv",)

DERIVED_MARKERS = (
    ".labels", ".instances", ".objectness", ".regions", ".background", ".probabilities", ".classes", ".preview",
    # masks and ground truth beside the images (the names pointseg_cli.io.masks accepts) are never inputs
    "_labels", ".masks", "_masks", ".mask", "_mask",
)


def suffix_of(path: str | Path) -> str:
    """The image suffix of ``path`` (lower case, e.g. ``".ome.tif"``), or ``""`` if it has none."""
    name = Path(path).name.lower()
    for suf in IMAGE_SUFFIXES:
        if name.endswith(suf):
            return suf
    return ""


def image_stem(path: str | Path) -> str:
    """File name without its image suffix: ``a.ome.tif`` → ``a``, ``b.labels.tif`` → ``b.labels``."""
    path = Path(path)
    suf = suffix_of(path)
    return path.name[: len(path.name) - len(suf)] if suf else path.stem


def is_derived(path: str | Path) -> bool:
    """True for names pointseg writes as outputs (``x.labels.tif``, ``x.objectness.tif``, ...) and mask names."""
    stem = image_stem(path)
    return any(stem.endswith(marker) for marker in DERIVED_MARKERS)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _stat(path: Path, *, what: str) -> os.stat_result:
    """``os.stat`` (following links) with one-line errors; never opens the file."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"{what} '{path}' is a symbolic link to a missing file") from None
        raise InputError(f"{what} '{path}' does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError(f"{what} '{path}' is a symbolic link loop; expected a file or folder") from None
        if exc.errno == errno.EACCES:
            raise InputError(f"{what} '{path}': permission denied") from None
        raise InputError(f"{what} '{path}' cannot be inspected: {exc.strerror or exc}") from None


def _usable(path: Path, *, explicit: bool) -> bool:
    """True for regular files and folders with an image suffix; warns (or raises when explicit)."""
    try:
        mode = _stat(path, what="input").st_mode
    except InputError as exc:
        if explicit:
            raise
        log.warning("skipping %s", str(exc).removeprefix("input "))
        return False
    if stat.S_ISDIR(mode):
        if suffix_of(path) in ZARR_SUFFIXES:
            return True
        if explicit:
            return True
        log.warning("skipping '%s': a folder, not an image (folders are not searched recursively)", path)
        return False
    if stat.S_ISREG(mode):
        return True
    if explicit:
        raise InputError(f"input '{path}' is {_kind(mode)}; expected an image file")
    log.warning("skipping '%s': %s, not an image file", path, _kind(mode))
    return False


def _list_folder(path: Path, text: str, include_derived: bool) -> list[Path]:
    try:
        names = sorted(os.listdir(path))
    except PermissionError:
        raise InputError(f"folder {text!r} cannot be listed: permission denied") from None
    except OSError as exc:
        raise InputError(f"folder {text!r} cannot be listed: {exc.strerror or exc}") from None
    entries = [
        path / n for n in names
        if not n.startswith(".") and suffix_of(n) and (include_derived or not is_derived(n))
    ]
    entries = [p for p in entries if _usable(p, explicit=False)]
    if not entries:
        raise InputError(f"folder {text!r} holds no image files (expected {', '.join(IMAGE_SUFFIXES)})")
    return entries


def _check_unique_stems(paths: Sequence[Path]) -> None:
    by_stem: dict[str, Path] = {}
    for p in paths:
        if is_derived(p):
            continue  # outputs found with include_derived are looked up by name, never written to
        stem = image_stem(p)
        other = by_stem.setdefault(stem, p)
        if other is not p:
            raise InputError(
                f"two images share the stem {stem!r}: '{other}' and '{p}'; pointseg names points and "
                "outputs by stem — rename one or process them separately"
            )


def find_images(
    inputs: Sequence[str | Path], *, include_derived: bool = False, unique_stems: bool = True
) -> list[Path]:
    """Expand files, folders and glob patterns into a sorted, de-duplicated list of image paths.

    Parameters
    ----------
    inputs : files, folders and glob patterns (``*``, ``?``, ``[``).
    include_derived : also take pointseg's own outputs (``*.labels.tif`` ...) from listings.
    unique_stems : refuse two different inputs with the same stem (their outputs would collide).

    Raises
    ------
    InputError
        An explicit path does not exist, is a link loop, not a regular file or has an unsupported
        suffix; a folder cannot be listed; nothing was found; two inputs share a stem.
    """
    found: list[Path] = []
    explicit_derived: list[Path] = []
    tables: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = [Path(m) for m in sorted(glob.glob(text))]
            matches = [m for m in matches if suffix_of(m) and (include_derived or not is_derived(m))]
            matches = [m for m in matches if _usable(m, explicit=False)]
            if not matches:
                raise InputError(f"pattern {text!r} matched no image files (expected {', '.join(IMAGE_SUFFIXES)})")
            found.extend(matches)
            continue
        path = Path(text)
        mode = _stat(path, what="input").st_mode
        if stat.S_ISDIR(mode) and not suffix_of(path):
            found.extend(_list_folder(path, text, include_derived))
        elif suffix_of(path):
            _usable(path, explicit=True)
            (explicit_derived if is_derived(path) and not include_derived else found).append(path)
        elif path.name.endswith(TABLE_OUTPUT_SUFFIXES) and not include_derived:
            tables.append(path)  # our object table beside the images in a shell-expanded '*'
        else:
            raise InputError(
                f"input {text!r} is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})"
            )
    if tables and not (found or explicit_derived):
        raise InputError(
            f"input '{tables[0]}' is not a supported image (expected one of {', '.join(IMAGE_SUFFIXES)})"
        )
    explicit_derived += tables
    if explicit_derived and found:
        # A shell-expanded '*.tif' names our outputs beside the images: never segment those.
        log.warning(
            "skipping %d pointseg output(s) among the inputs (e.g. '%s'); name one on its own to use it",
            len(explicit_derived), explicit_derived[0].name,
        )
    elif explicit_derived:
        found = explicit_derived
    unique: dict[str, Path] = {}
    for p in found:
        unique.setdefault(str(p.resolve()), p)
    paths = sorted(unique.values(), key=lambda p: str(p))
    if unique_stems:
        _check_unique_stems(paths)
    return paths
