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
import json
import logging
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pointseg_cli.errors import PointsError, check_choice
from pointseg_cli.io.points import parse_float

log = logging.getLogger(__name__)

FORMATS = ("auto", "csv", "napari", "qupath", "cellcounter")

_X = ("x", "xpx", "posx", "positionx", "centroidx", "xcoord", "xcoordinate")
_Y = ("y", "ypx", "posy", "positiony", "centroidy", "ycoord", "ycoordinate")
_Z = ("z", "zpx", "posz", "positionz", "centroidz", "zcoord", "zcoordinate")
_CLASS = ("class", "classname", "label", "type", "name", "classification", "category")
_IMAGE = ("image", "imagename", "imagefile", "filename", "file", "stem", "source")


@dataclass(frozen=True)
class RawPoints:
    """Points as read from one file, before they are matched to images.

    Attributes
    ----------
    source : the file read.
    format : the format it was read as (one of :data:`FORMATS` except ``auto``).
    coords : numpy.ndarray, shape (N, 3), float64
        ``z, y, x`` in pixel index space; z is NaN where the file has none.
    class_name : numpy.ndarray, shape (N,), str
        Class names; ``""`` where the file gives none.
    image : numpy.ndarray, shape (N,), str
        Image stems named by the file; ``""`` where it names none.
    z_is_stack_position : bool
        True for Cell Counter files: z is a 0-based ImageJ stack position, not yet a z index.
    """

    source: Path
    format: str
    coords: np.ndarray
    class_name: np.ndarray
    image: np.ndarray
    z_is_stack_position: bool = False

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords, dtype=np.float64).reshape(-1, 3)
        n = coords.shape[0]
        if np.asarray(self.class_name).shape != (n,) or np.asarray(self.image).shape != (n,):
            raise PointsError(f"'{self.source.name}': point columns differ in length")
        object.__setattr__(self, "coords", coords)

    def __len__(self) -> int:
        return int(self.coords.shape[0])


def _key(name: str) -> str:
    name = re.sub(r"[\(\[].*?[\)\]]", "", name.strip().lower())  # drop units such as "(px)"
    return re.sub(r"[\s_\-]", "", name)


def _stem_of(value: str) -> str:
    from pointseg_cli.io.images import image_stem

    value = value.strip().replace("\\", "/")
    return image_stem(Path(value).name) if value else ""


def _str_array(values: list[str]) -> np.ndarray:
    return np.array(values, dtype=str) if values else np.empty(0, dtype="<U1")


# --------------------------------------------------------------------------------------------
# delimited text (plain CSV and napari)


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PointsError(f"'{path.name}' is not a UTF-8 text table: {exc}") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise PointsError(f"points file '{path.name}' is empty")
    first = lines[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    rows = list(csv.reader(lines, delimiter=delimiter))
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
        names.append(row[class_col].strip() if class_col is not None and class_col < len(row) else "")
        images.append(_stem_of(row[image_col]) if image_col is not None and image_col < len(row) else "")
    if not coords:
        raise PointsError(f"points file '{path.name}' has a header but no points")
    return RawPoints(path, fmt, np.array(coords), _str_array(names), _str_array(images))


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
# QuPath GeoJSON


def _qupath_class(feature: dict) -> str:
    props = feature.get("properties") or {}
    cls = props.get("classification")
    if isinstance(cls, dict):
        return str(cls.get("name", "")).strip()
    if isinstance(cls, str):
        return cls.strip()
    return ""


def _qupath_z(feature: dict) -> float:
    for holder in (feature.get("geometry") or {}, feature, feature.get("properties") or {}):
        plane = holder.get("plane") if isinstance(holder, dict) else None
        if isinstance(plane, dict) and plane.get("z") is not None:
            return float(plane["z"])
    return math.nan


def read_qupath_geojson(path: str | Path) -> RawPoints:
    """Read Point/MultiPoint features from a QuPath GeoJSON export (x, y shifted by -0.5)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PointsError(f"'{path.name}' is not valid GeoJSON: {exc}") from None
    if isinstance(data, dict) and data.get("type") == "Feature":
        features = [data]
    elif isinstance(data, dict) and isinstance(data.get("features"), list):
        features = data["features"]
    elif isinstance(data, list):
        features = data
    else:
        raise PointsError(f"'{path.name}' is not a GeoJSON FeatureCollection, feature list or feature")
    coords, names, skipped = [], [], {}
    for i, feature in enumerate(features):
        geom = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geom, dict):
            raise PointsError(f"'{path.name}' feature {i} has no geometry")
        kind = geom.get("type")
        pts = geom.get("coordinates")
        if kind == "Point":
            pts = [pts]
        elif kind != "MultiPoint":
            skipped[kind] = skipped.get(kind, 0) + 1
            continue
        z, cname = _qupath_z(feature), _qupath_class(feature)
        for p in pts or []:
            if not isinstance(p, list | tuple) or len(p) < 2:
                raise PointsError(f"'{path.name}' feature {i} has a malformed coordinate {p!r}; expected [x, y]")
            try:
                x, y = float(p[0]), float(p[1])
            except (TypeError, ValueError):
                raise PointsError(f"'{path.name}' feature {i}: coordinates must be numbers; found {p!r}") from None
            coords.append((z, y - 0.5, x - 0.5))
            names.append(cname)
    if skipped:
        log.warning("%s: skipped non-point features: %s", path.name, ", ".join(f"{k} x{v}" for k, v in skipped.items()))
    if not coords:
        found = f" (found only {', '.join(map(str, skipped))})" if skipped else ""
        raise PointsError(f"'{path.name}' has no Point or MultiPoint features{found}")
    return RawPoints(path, "qupath", np.array(coords), _str_array(names), _str_array([""] * len(names)))


# --------------------------------------------------------------------------------------------
# Fiji / ImageJ Cell Counter


def _int_text(elem: ET.Element, tag: str, *, path: Path, required: bool = True) -> int | None:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise PointsError(f"'{path.name}': a Marker lacks <{tag}>")
        return None
    try:
        return int(float(child.text.strip()))
    except ValueError:
        raise PointsError(f"'{path.name}': <{tag}> must be a number; found {child.text.strip()!r}") from None


def read_cellcounter_xml(path: str | Path) -> RawPoints:
    """Read a Fiji/ImageJ Cell Counter XML file (z kept as the 0-based stack position)."""
    path = Path(path)
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise PointsError(f"'{path.name}' is not valid XML: {exc}") from None
    types = root.findall(".//Marker_Type")
    if not types:
        raise PointsError(f"'{path.name}' is not a Cell Counter file: no <Marker_Type> elements")
    fname = root.findtext(".//Image_Filename") or ""
    image = _stem_of(fname)
    coords, names = [], []
    for mt in types:
        number = mt.findtext("Type")
        name = (mt.findtext("Name") or "").strip() or f"Type {(number or '?').strip()}"
        for marker in mt.findall("Marker"):
            x = _int_text(marker, "MarkerX", path=path)
            y = _int_text(marker, "MarkerY", path=path)
            z = _int_text(marker, "MarkerZ", path=path, required=False)
            if z is not None and z < 1:
                raise PointsError(f"'{path.name}': MarkerZ is a 1-based slice number; found {z}")
            coords.append((math.nan if z is None else z - 1, y, x))
            names.append(name)
    if not coords:
        raise PointsError(f"'{path.name}' has marker types but no markers")
    return RawPoints(
        path, "cellcounter", np.array(coords, dtype=np.float64), _str_array(names),
        _str_array([image] * len(names)), z_is_stack_position=True,
    )


# --------------------------------------------------------------------------------------------
# detection


def detect_format(path: str | Path) -> str:
    """Guess the format of a points file from its extension and first bytes."""
    path = Path(path)
    try:
        head = path.read_bytes()[:4096].decode("utf-8-sig", errors="replace").lstrip()
    except OSError as exc:
        raise PointsError(f"cannot read points file '{path}': {exc}") from None
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
    if not path.is_file():
        raise PointsError(f"points file '{path}' does not exist")
    if path.stat().st_size == 0:
        raise PointsError(f"points file '{path.name}' is empty")
    if fmt == "auto":
        fmt = detect_format(path)
        log.debug("%s: detected format %s", path.name, fmt)
    return _READERS[fmt](path)
