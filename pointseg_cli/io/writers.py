"""Atomic writers: TIFF / OME-TIFF, OME-Zarr, PNG.

The voxel size (micrometres along the spatial axes) of an output is written as OME
``PhysicalSizeX/Y/Z`` in TIFFs and as the NGFF ``scale`` of OME-Zarr images
(:mod:`pointseg_cli.io.ome_zarr`); provenance and class names go into the OME ``Description``
(JSON) and the zarr group attributes.

Every file pointseg writes goes to a hidden temporary name
(``.name.tmp-<host>-<pid>-<random>``) in the destination folder and is renamed over the final name
only once complete, so a killed process leaves no partial output and a batch can be resumed by
running it again. The host and process id in the name let a later run recognise temporaries whose
process is gone (:func:`remove_stale_temporaries`); nothing else is ever removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ImageFormatError, OutputError

log = logging.getLogger(__name__)

#: ``.<name>.tmp-<host>-<pid>-<8 hex>``: the temporary names :func:`atomic_output` makes.
TEMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{8})$")


def host_tag() -> str:
    """This machine's short host name, reduced to letters, digits, ``_`` and ``-`` (for file names)."""
    name = socket.gethostname().split(".")[0] or "localhost"
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (one of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # platforms without signal 0: assume alive, never remove what may be in use
        return True
    return True


def is_stale_temporary(path: Path) -> bool:
    """True for a temporary of :func:`atomic_output` made on this host by a process that is gone."""
    match = TEMP_PATTERN.match(path.name)
    if match is None or match["host"] != host_tag():
        return False
    return not pid_alive(int(match["pid"]))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that killed pointseg runs left in ``folder`` (not recursive).

    Only names made by :func:`atomic_output` on this host whose process no longer exists are
    removed; temporaries of live runs, of other hosts (whose processes cannot be checked) and all
    other files are left alone.

    Returns
    -------
    list of Path
        What was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        path = Path(entry.path)
        if is_stale_temporary(path):
            _remove(path)
            if not os.path.lexists(path):
                removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left in %s by a run that is gone", len(removed), folder)
    return removed


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
    if not path.parent.is_dir():
        check_output_dir(path.parent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create output folder '{path.parent}': {exc.strerror or exc}") from None
    tmp = _temp_sibling(path)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    try:
        _commit(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def scratch_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path`` (as :func:`atomic_output` names them) and remove it afterwards.

    For intermediate files that never become outputs; a killed run's leftover is removed by
    :func:`remove_stale_temporaries` like any other temporary.
    """
    tmp = _temp_sibling(Path(path))
    try:
        yield tmp
    finally:
        _remove(tmp)


def _commit(tmp: Path, path: Path) -> None:
    """Rename the finished temporary ``tmp`` over ``path`` (a folder output replaces a folder)."""
    if not tmp.exists():
        raise RuntimeError(f"atomic_output: nothing was written to the temporary path for '{path}'")
    if not tmp.is_dir() and path.is_dir():
        raise OutputError(f"output '{path}' is a folder; expected a file (remove it or choose another folder)")
    if tmp.is_dir() and path.exists():
        trash = _temp_sibling(path)
        os.replace(path, trash)
        os.replace(tmp, path)
        _remove(trash)
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


def prepare_output_dir(folder: str | Path, *, what: str = "output folder") -> Path:
    """Create ``folder`` if needed, check that files can be created in it, and tidy it.

    Removes what killed runs left there (:func:`remove_stale_temporaries` and
    :func:`~pointseg_cli.io.locks.remove_stale_locks`).

    Raises
    ------
    OutputError
        ``folder`` is a file, lies under a file, cannot be created or is not writable.
    """
    from pointseg_cli.io.locks import remove_stale_locks

    out = check_output_dir(folder, what=what)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {what} '{out}': {exc.strerror or exc}") from None
    probe = out / f".pointseg-probe.tmp-{host_tag()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        raise OutputError(f"{what} '{out}' is not writable: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()
    remove_stale_temporaries(out)
    remove_stale_locks(out)
    return out


def check_output_dir(folder: str | Path, *, what: str = "output folder") -> Path:
    """Raise :class:`OutputError` when ``folder`` is a file or lies under one; creates nothing."""
    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{what} '{out}' is a file, not a folder")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{what} '{out}' cannot be created: '{parent}' is a file, not a folder")
            break
    return out


def check_output_path(path: Path, *, folder: bool = False) -> None:
    """Raise :class:`OutputError` when something of the other kind (file / folder) holds ``path``."""
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"output '{path}' is a file; expected a folder (remove it or choose another folder)")
    if not folder and path.is_dir():
        raise OutputError(f"output '{path}' is a folder; expected a file (remove it or choose another folder)")
