"""Readers for the markup formats: QuPath GeoJSON and Fiji/ImageJ Cell Counter XML.

See :mod:`pointseg_cli.io.point_formats` for the conventions of each format; malformed values
(text or non-finite coordinates, control characters in names, deep nesting) are refused with one
line naming the file.
"""

from __future__ import annotations

import json
import logging
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from pointseg_cli.errors import PointsError
from pointseg_cli.io.points import check_name, finite_number, read_error
from pointseg_cli.io.raw_points import RawPoints, stem_of, str_array

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# QuPath GeoJSON


def _qupath_class(feature: dict, path: Path, i: int) -> str:
    props = feature.get("properties")
    cls = props.get("classification") if isinstance(props, dict) else None
    if isinstance(cls, dict):
        cls = cls.get("name", "")
    if cls is None:
        return ""
    if not isinstance(cls, str):
        raise PointsError(f"'{path.name}' feature {i}: the class name must be text; found {cls!r:.40}")
    return check_name(cls, what="class name", path=path, where=f"feature {i}")


def _coordinate(value: object, *, what: str, path: Path, i: int) -> float:
    """A finite JSON number (text such as "12.5" is refused, as are booleans)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PointsError(f"'{path.name}' feature {i}: coordinates must be numbers; found {value!r:.40} for {what}")
    number = float(value)
    if not math.isfinite(number):
        raise PointsError(f"'{path.name}' feature {i}: coordinates must be finite numbers; found {value!r} for {what}")
    return number


def _qupath_z(feature: dict, path: Path, i: int) -> float:
    for holder in (feature.get("geometry"), feature, feature.get("properties")):
        plane = holder.get("plane") if isinstance(holder, dict) else None
        if isinstance(plane, dict) and plane.get("z") is not None:
            return _coordinate(plane["z"], what="plane.z", path=path, i=i)
    return math.nan


def read_qupath_geojson(path: str | Path) -> RawPoints:
    """Read Point/MultiPoint features from a QuPath GeoJSON export (x, y shifted by -0.5)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise PointsError(f"'{path.name}' is not valid GeoJSON: {exc}") from None
    except RecursionError:
        raise PointsError(f"'{path.name}' is nested too deeply to be GeoJSON") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise read_error(path, exc) from None
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
            key = kind if isinstance(kind, str) else repr(kind)[:20]
            skipped[key] = skipped.get(key, 0) + 1
            continue
        if not isinstance(pts, list):
            raise PointsError(
                f"'{path.name}' feature {i}: {kind} coordinates must be a list; found {pts!r:.40}"
            )
        z, cname = _qupath_z(feature, path, i), _qupath_class(feature, path, i)
        for p in pts:
            if not isinstance(p, list) or len(p) < 2:
                raise PointsError(f"'{path.name}' feature {i} has a malformed coordinate {p!r:.40}; expected [x, y]")
            x = _coordinate(p[0], what="x", path=path, i=i)
            y = _coordinate(p[1], what="y", path=path, i=i)
            coords.append((z, y - 0.5, x - 0.5))
            names.append(cname)
    if skipped:
        log.warning("%s: skipped non-point features: %s", path.name, ", ".join(f"{k} x{v}" for k, v in skipped.items()))
    if not coords:
        found = f" (found only {', '.join(map(str, skipped))})" if skipped else ""
        raise PointsError(f"'{path.name}' has no Point or MultiPoint features{found}")
    return RawPoints(path, "qupath", np.array(coords), str_array(names), str_array([""] * len(names)))


# --------------------------------------------------------------------------------------------
# Fiji / ImageJ Cell Counter


def _int_text(elem: ET.Element, tag: str, *, path: Path, required: bool = True) -> int | None:
    child = elem.find(tag)
    if child is None or child.text is None or not child.text.strip():
        if required:
            raise PointsError(f"'{path.name}': a Marker lacks <{tag}>")
        return None
    return int(finite_number(child.text.strip(), label=f"'{path.name}': <{tag}>"))


def read_cellcounter_xml(path: str | Path) -> RawPoints:
    """Read a Fiji/ImageJ Cell Counter XML file (z kept as the 0-based stack position)."""
    path = Path(path)
    try:
        root = ET.fromstring(path.read_bytes())
    except ET.ParseError as exc:
        raise PointsError(f"'{path.name}' is not valid XML: {exc}") from None
    except RecursionError:
        raise PointsError(f"'{path.name}' is nested too deeply to be a Cell Counter file") from None
    except OSError as exc:
        raise read_error(path, exc) from None
    types = root.findall(".//Marker_Type")
    if not types:
        raise PointsError(f"'{path.name}' is not a Cell Counter file: no <Marker_Type> elements")
    fname = root.findtext(".//Image_Filename") or ""
    image = stem_of(check_name(fname, what="image name", path=path, where="Image_Filename"))
    coords, names = [], []
    for mt in types:
        number = mt.findtext("Type")
        name = (mt.findtext("Name") or "").strip() or f"Type {(number or '?').strip()}"
        name = check_name(name, what="class name", path=path, where="Marker_Type")
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
        path, "cellcounter", np.array(coords, dtype=np.float64), str_array(names),
        str_array([image] * len(names)), z_is_stack_position=True,
    )
