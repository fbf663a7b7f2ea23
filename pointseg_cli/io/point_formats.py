"""Readers for point annotations written by other tools.

Every reader returns :class:`RawPoints` -- coordinates in pixel *index* space (pixel centres at
integers, the convention of numpy and napari) with the image and class columns filled where the
file names them. :mod:`pointseg_cli.annotate` then assigns images, checks the points against the
image shapes and builds the canonical :class:`~pointseg_cli.io.points.PointTable`.

Formats (``--format``):

``csv``
    Any delimited text table (comma, semicolon or tab) with ``x`` and ``y`` (optional ``z``)
    columns -- or ``axis-0, axis-1[, axis-2]`` columns in (z,) y, x order -- plus optional class
    (``class``, ``label``, ``type``, ``name``, ...) and image (``image``, ``filename``, ``file``,
    ...) columns. Names are matched case-insensitively, ignoring spaces, ``_`` and ``-``.
``napari``
    napari's points-layer CSV: ``index, axis-0, axis-1[, axis-2]`` and any feature columns; the
    last two axes are y, x and a third-from-last is z. A ``class``/``label``/... feature column
    gives the class.
``qupath``
    QuPath GeoJSON export: a FeatureCollection, a list of features or one feature; ``Point`` and
    ``MultiPoint`` geometries (others are skipped with a warning); class from
    ``properties.classification.name``; an optional ``plane.z`` gives z. QuPath coordinates are
    continuous x, y with pixel (0, 0) covering [0, 1), so 0.5 is subtracted to get index space.
``cellcounter``
    Fiji/ImageJ Cell Counter XML: each ``Marker_Type`` (its ``Name``, else ``"Type <n>"``, is the
    class) holds ``Marker`` elements with integer ``MarkerX``/``MarkerY`` pixel indices and
    ``MarkerZ``, the 1-based *stack position*. The reader keeps ``MarkerZ - 1``; the importer maps
    it to z with the image's channel count (ImageJ hyperstacks interleave channels first), and
    drops it for 2-D images when it is the first plane. ``Image_Filename`` names the image.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path

import numpy as np

from pointseg_cli.errors import PointsError, check_choice
from pointseg_cli.io.point_markup import read_cellcounter_xml, read_qupath_geojson
from pointseg_cli.io.points import check_name, parse_float, read_error
from pointseg_cli.io.raw_points import RawPoints, stem_of, str_array

__all__ = [
    "FORMATS", "RawPoints", "detect_format", "read_cellcounter_xml", "read_napari_csv", "read_plain_csv",
    "read_point_file", "read_qupath_geojson",
]

log = logging.getLogger(__name__)

FORMATS = ("auto", "csv", "napari", "qupath", "cellcounter")

_X = ("x", "xpx", "posx", "positionx", "centroidx", "xcoord", "xcoordinate")
_Y = ("y", "ypx", "posy", "positiony", "centroidy", "ycoord", "ycoordinate")
_Z = ("z", "zpx", "posz", "positionz", "centroidz", "zcoord", "zcoordinate")
_CLASS = ("class", "classname", "label", "type", "name", "classification", "category")
_IMAGE = ("image", "imagename", "imagefile", "filename", "file", "stem", "source")


def _key(name: str) -> str:
    name = re.sub(r"[\(\[].*?[\)\]]", "", name.strip().lower())  # drop units such as "(px)"
    return re.sub(r"[\s_\-]", "", name)


# --------------------------------------------------------------------------------------------
# delimited text (plain CSV and napari)


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if not lines:
            raise PointsError(f"points file '{path.name}' is empty")
        first = lines[0]
        delimiter = max((",", ";", "\t"), key=first.count)
        rows = list(csv.reader(lines, delimiter=delimiter))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise read_error(path, exc) from None
    return [h.strip() for h in rows[0]], rows[1:]


def _pick(keys: list[str], aliases: tuple[str, ...]) -> int | None:
    for alias in aliases:
        if alias in keys:
            return keys.index(alias)
    return None


def _number(row: list[str], col: int, *, what: str, path: Path, line: int, optional: bool = False) -> float:
    text = row[col] if col < len(row) else ""
    return parse_float(text, what=what, path=path, line=line, allow_empty=optional)


def _table_points(
    path: Path, fmt: str, header: list[str], rows: list[list[str]], zyx_cols: tuple[int | None, int, int]
) -> RawPoints:
    keys = [_key(h) for h in header]
    class_col = _pick(keys, _CLASS)
    image_col = _pick(keys, _IMAGE) if fmt == "csv" else None
    zc, yc, xc = zyx_cols
    coords, names, images = [], [], []
    for line, row in enumerate(rows, start=2):
        if all(not v.strip() for v in row):
            continue
        z = math.nan if zc is None else _number(row, zc, what=header[zc], path=path, line=line, optional=True)
        y = _number(row, yc, what=header[yc], path=path, line=line)
        x = _number(row, xc, what=header[xc], path=path, line=line)
        coords.append((z, y, x))
        where = f"line {line}"
        cname = row[class_col] if class_col is not None and class_col < len(row) else ""
        names.append(check_name(cname, what="class name", path=path, where=where))
        image = row[image_col] if image_col is not None and image_col < len(row) else ""
        images.append(stem_of(check_name(image, what="image name", path=path, where=where)))
    if not coords:
        raise PointsError(f"points file '{path.name}' has a header but no points")
    return RawPoints(path, fmt, np.array(coords), str_array(names), str_array(images))


def _axis_columns(keys: list[str]) -> list[int]:
    cols = {int(k[4:]): i for i, k in enumerate(keys) if re.fullmatch(r"axis\d+", k)}
    return [cols[k] for k in sorted(cols)] if sorted(cols) == list(range(len(cols))) else []


def _from_axis_columns(path: Path, fmt: str, header: list[str], rows: list[list[str]], axes: list[int]):
    if len(axes) not in (2, 3):
        raise PointsError(
            f"'{path.name}' has {len(axes)} axis-N columns; expected 2 (y, x) or 3 (z, y, x)"
        )
    zc = axes[0] if len(axes) == 3 else None
    return _table_points(path, fmt, header, rows, (zc, axes[-2], axes[-1]))


def read_napari_csv(path: str | Path) -> RawPoints:
    """Read a napari points-layer CSV (``index, axis-0, axis-1[, axis-2]`` plus feature columns)."""
    path = Path(path)
    header, rows = _read_rows(path)
    axes = _axis_columns([_key(h) for h in header])
    if not axes:
        raise PointsError(
            f"'{path.name}' is not a napari points CSV: expected columns index, axis-0, axis-1[, axis-2]; "
            f"found {', '.join(header)}"
        )
    return _from_axis_columns(path, "napari", header, rows, axes)


def read_plain_csv(path: str | Path) -> RawPoints:
    """Read a free-form points table with x/y[/z] (or axis-N) columns and optional class/image columns."""
    path = Path(path)
    header, rows = _read_rows(path)
    keys = [_key(h) for h in header]
    xc, yc, zc = _pick(keys, _X), _pick(keys, _Y), _pick(keys, _Z)
    if xc is None or yc is None:
        axes = _axis_columns(keys)
        if axes:
            return _from_axis_columns(path, "csv", header, rows, axes)
        raise PointsError(
            f"'{path.name}' has no coordinate columns: expected x and y (optional z) or axis-0, axis-1; "
            f"found {', '.join(header)}"
        )
    return _table_points(path, "csv", header, rows, (zc, yc, xc))


# --------------------------------------------------------------------------------------------
# detection


def detect_format(path: str | Path) -> str:
    """Guess the format of a points file from its extension and first bytes."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8-sig", errors="replace").lstrip()
    except OSError as exc:
        raise read_error(path, exc) from None
    suffix = path.suffix.lower()
    if suffix == ".xml" or head.startswith("<"):
        return "cellcounter"
    if suffix in (".geojson", ".json") or head[:1] in ("{", "["):
        return "qupath"
    first = head.splitlines()[0] if head else ""
    keys = [_key(h) for h in re.split(r"[,;\t]", first)]
    if keys and keys[0] == "index" and _axis_columns(keys):
        return "napari"
    return "csv"


_READERS = {
    "csv": read_plain_csv,
    "napari": read_napari_csv,
    "qupath": read_qupath_geojson,
    "cellcounter": read_cellcounter_xml,
}


def read_point_file(path: str | Path, *, fmt: str = "auto") -> RawPoints:
    """Read one points file in the given format (``auto`` detects it).

    Raises
    ------
    PointsError
        Missing or empty file, unreadable content, no points.
    ConfigError
        Unknown ``fmt``.
    """
    check_choice("--format", fmt, FORMATS)
    path = Path(path)
    if not path.exists():
        raise PointsError(f"points file '{path}' does not exist")
    if not path.is_file():
        raise PointsError(f"points file '{path}' is not a regular file")
    if path.stat().st_size == 0:
        raise PointsError(f"points file '{path.name}' is empty")
    if fmt == "auto":
        fmt = detect_format(path)
        log.debug("%s: detected format %s", path.name, fmt)
    return _READERS[fmt](path)
