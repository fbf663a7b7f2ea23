"""Voxel size from image metadata: OME-XML ``PhysicalSize*``, ImageJ spacing/resolution, NGFF scales.

Every reader returns ``{axis letter: size in micrometres}`` for the spatial axes it knows, or an
empty dict; :func:`pointseg_cli.io.axes.make_info` keeps the voxel size only when every spatial
axis of the image is covered. Unknown units (ImageJ's ``pixel``) mean "not recorded".
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)

_MICRO = {
    "µm": 1.0, "μm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "micrometer": 1.0, "micrometre": 1.0,
    "\\u00b5m": 1.0, "nm": 1e-3, "nanometer": 1e-3, "nanometre": 1e-3, "mm": 1e3, "millimeter": 1e3,
    "millimetre": 1e3, "cm": 1e4, "centimeter": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "å": 1e-4, "angstrom": 1e-4, "pm": 1e-6, "picometer": 1e-6,
}


def to_micrometres(value: Any, unit: str | None, *, default_unit: str | None = "µm") -> float | None:
    """``value`` in ``unit`` as micrometres; ``None`` if not a positive finite number or unit unknown."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number <= 0:
        return None
    key = (unit if unit not in (None, "") else default_unit) or ""
    factor = _MICRO.get(str(key).strip().lower())
    return number * factor if factor is not None else None


def ome_spacing(ome_xml: str | None, series: int = 0) -> dict[str, float]:
    """``PhysicalSizeX/Y/Z`` (+ ``...Unit``, default µm) of one OME-XML image."""
    if not ome_xml:
        return {}
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError as exc:
        log.debug("OME-XML unreadable: %s", exc)
        return {}
    pixels = [el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"]
    if len(pixels) <= series:
        return {}
    attrs = pixels[series].attrib
    out = {}
    for axis in "XYZ":
        size = to_micrometres(attrs.get(f"PhysicalSize{axis}"), attrs.get(f"PhysicalSize{axis}Unit"))
        if size is not None:
            out[axis] = size
    return out


def _rational(tag_value: Any) -> float | None:
    try:
        num, den = tag_value
        return float(num) / float(den) if den else None
    except (TypeError, ValueError):
        try:
            return float(tag_value)
        except (TypeError, ValueError):
            return None


def imagej_spacing(ij_meta: Mapping[str, Any] | None, x_resolution: Any, y_resolution: Any) -> dict[str, float]:
    """ImageJ's calibration: ``unit``, X/Y resolution tags (pixels per unit) and ``spacing`` (z)."""
    if not ij_meta:
        return {}
    unit = ij_meta.get("unit")
    if unit in (None, "", "pixel", "pixels"):
        return {}
    out = {}
    for axis, res in (("X", x_resolution), ("Y", y_resolution)):
        per_unit = _rational(res)
        if per_unit:
            size = to_micrometres(1.0 / per_unit, unit, default_unit=None)
            if size is not None:
                out[axis] = size
    z = to_micrometres(ij_meta.get("spacing", 1.0), unit, default_unit=None)
    if z is not None:
        out["Z"] = z
    return out


def _scale_of(transforms: Any) -> list[float] | None:
    if not isinstance(transforms, list):
        return None
    scale = None
    for t in transforms:
        if isinstance(t, dict) and t.get("type") == "scale" and isinstance(t.get("scale"), list):
            scale = t["scale"]
    return scale


def ngff_spacing(multiscale: Mapping[str, Any], axes: Sequence[Any] | None) -> dict[str, float]:
    """Scale of the first (full-resolution) dataset times any multiscale-level scale, per axis."""
    if not axes:
        return {}
    datasets = multiscale.get("datasets") or [{}]
    scale = _scale_of(datasets[0].get("coordinateTransformations") if isinstance(datasets[0], dict) else None)
    if scale is None or len(scale) != len(axes):
        return {}
    outer = _scale_of(multiscale.get("coordinateTransformations"))
    if outer is not None and len(outer) == len(scale):
        try:
            scale = [float(a) * float(b) for a, b in zip(scale, outer, strict=True)]
        except (TypeError, ValueError):
            return {}
    out = {}
    for axis, value in zip(axes, scale, strict=True):
        if not isinstance(axis, dict) or axis.get("type") not in (None, "space"):
            continue
        name = str(axis.get("name", "")).upper()
        if name in ("X", "Y", "Z"):
            size = to_micrometres(value, axis.get("unit"), default_unit=None)
            if size is not None:
                out[name] = size
    return out


def resolve_voxel_size(
    stored: Sequence[float] | None, override: Sequence[float] | None, *, ndim: int, name: str = "image"
) -> tuple[float, ...] | None:
    """The voxel size to use for an image: ``override`` (``--voxel-size``) when given, else ``stored``.

    ``override`` may give one value (isotropic), one per spatial axis, or ``(z, y, x)`` for a 2D
    image (its ``(y, x)`` part is used, so one setting serves a batch that mixes 2D and 3D).

    Raises
    ------
    ConfigError
        ``override`` has a count of values that does not fit a ``ndim``-D image, or a value that is
        not a positive finite number.
    """
    from pointseg_cli.errors import ConfigError

    if override is None:
        return tuple(float(v) for v in stored) if stored is not None else None
    values = tuple(float(v) for v in override)
    if not values or not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"voxel size must be positive numbers in µm; got {list(override)}")
    if len(values) == 1:
        return values * ndim
    if len(values) == ndim:
        return values
    if len(values) == 3 and ndim == 2:
        return values[1:]
    raise ConfigError(
        f"voxel size has {len(values)} values but '{name}' is {ndim}D: give {ndim} values "
        f"({'z,y,x' if ndim == 3 else 'y,x'}) or one for all axes"
    )
