"""Point annotations: the :class:`PointTable` and the canonical points CSV.

The canonical CSV (output of ``annotate-import``, input of ``objectness`` and ``train``) has the
header ``image,z,y,x,class``:

* ``image`` -- the stem of the image file the point belongs to (``a.ome.tif`` → ``a``);
* ``z, y, x`` -- pixel coordinates (array indices, pixel centres at integers; floats allowed and
  rounded to the nearest pixel when used); ``z`` is empty for points on 2-D images;
* ``class`` -- the object class name.

Class ids: 0 is background, object classes are ``1..K`` in the order of
:attr:`PointTable.class_names` (``--classes`` order, else sorted names). Readers for other tools'
formats (napari, QuPath, Cell Counter, free-form CSV) live in :mod:`pointseg_cli.io.point_formats`.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg_cli.errors import PointsError
from pointseg_cli.parsing import parse_names

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = ("image", "z", "y", "x", "class")


def _as_str_array(values: object) -> np.ndarray:
    items = [str(v) for v in np.asarray(values, dtype=object).reshape(-1)]
    return np.array(items, dtype=str) if items else np.empty(0, dtype="<U1")


@dataclass(frozen=True)
class PointTable:
    """Point annotations for one or more images.

    Attributes
    ----------
    image : numpy.ndarray, shape (N,), str
        Image stem of each point.
    coords : numpy.ndarray, shape (N, 3), float64
        ``z, y, x`` pixel coordinates; ``z`` is NaN for points on 2-D images.
    class_name : numpy.ndarray, shape (N,), str
        Class name of each point; every name is one of ``class_names``.
    class_names : tuple of str
        Ordered object classes (length K); class id = index + 1, 0 is background.
    """

    image: np.ndarray
    coords: np.ndarray
    class_name: np.ndarray
    class_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        coords = np.asarray(self.coords, dtype=np.float64)
        if coords.size == 0:
            coords = coords.reshape(0, 3)
        if coords.ndim != 2 or coords.shape[1] != 3:
            raise PointsError(f"point coordinates must have shape (N, 3) for z, y, x; got {coords.shape}")
        n = coords.shape[0]
        image = _as_str_array(self.image)
        class_name = _as_str_array(self.class_name)
        if image.shape != (n,) or class_name.shape != (n,):
            raise PointsError(
                f"point table columns differ in length: {n} coordinates, {image.shape[0]} image names, "
                f"{class_name.shape[0]} class names"
            )
        if np.isnan(coords[:, 1:]).any() or np.isinf(coords).any():
            raise PointsError("point coordinates must be finite numbers; found NaN or infinity in y or x")
        names = tuple(str(c) for c in self.class_names) or tuple(sorted(set(class_name.tolist())))
        if len(set(names)) != len(names):
            raise PointsError(f"class names must be unique; got {list(names)}")
        if any(not c.strip() for c in names):
            raise PointsError(f"class names must not be empty; got {list(names)}")
        unknown = sorted(set(class_name.tolist()) - set(names))
        if unknown:
            raise PointsError(f"points use classes {unknown} that are not among the classes {list(names)}")
        if any(not s for s in image.tolist()):
            raise PointsError("every point needs an image name; found an empty one")
        for kind, values in (("class", names), ("image", image.tolist())):
            bad = next((v for v in values if any(ord(ch) < 32 or ord(ch) == 127 for ch in v)), None)
            if bad is not None:
                raise PointsError(f"{kind} name {bad[:40]!r} contains a control character; expected printable text")
        coords.setflags(write=False)
        image.setflags(write=False)
        class_name.setflags(write=False)
        object.__setattr__(self, "coords", coords)
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "class_name", class_name)
        object.__setattr__(self, "class_names", names)

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def stems(self) -> list[str]:
        """Unique image stems, sorted."""
        return sorted(set(self.image.tolist()))

    @property
    def is_3d(self) -> np.ndarray:
        """Boolean mask ``(N,)``: points that carry a z coordinate."""
        return ~np.isnan(self.coords[:, 0])

    def class_ids(self) -> np.ndarray:
        """Class id of each point, ``(N,)`` int32 in ``1..K``."""
        lookup = {name: i + 1 for i, name in enumerate(self.class_names)}
        return np.array([lookup[c] for c in self.class_name.tolist()], dtype=np.int32)

    def for_image(self, stem: str) -> PointTable:
        """The points of one image (same class list, so class ids stay stable)."""
        keep = self.image == stem
        return self.subset(keep)

    def subset(self, keep: np.ndarray) -> PointTable:
        """Points selected by a boolean mask or index array, keeping the class list."""
        return PointTable(
            image=self.image[keep], coords=self.coords[keep], class_name=self.class_name[keep],
            class_names=self.class_names,
        )

    def pixel_coords(self, ndim: int) -> np.ndarray:
        """Rounded pixel indices, ``(N, ndim)`` int64; ``ndim`` 2 gives ``(y, x)``, 3 gives ``(z, y, x)``.

        Raises
        ------
        PointsError
            If ``ndim`` is 3 and some point has no z, or ``ndim`` is 2 and some point has one.
        """
        if ndim == 2:
            if self.is_3d.any():
                raise PointsError(
                    f"{int(self.is_3d.sum())} point(s) have a z coordinate but 2-D (y, x) pixels were asked for"
                )
            return np.rint(self.coords[:, 1:]).astype(np.int64)
        if ndim == 3:
            if (~self.is_3d).any():
                raise PointsError(
                    f"{int((~self.is_3d).sum())} point(s) have no z coordinate but 3-D (z, y, x) pixels "
                    "were asked for"
                )
            return np.rint(self.coords).astype(np.int64)
        raise PointsError(f"ndim must be 2 or 3; got {ndim}")

    def with_classes(self, classes: Sequence[str]) -> PointTable:
        """The same points with the class order ``classes`` (which must cover every used class)."""
        return PointTable(image=self.image, coords=self.coords, class_name=self.class_name,
                          class_names=tuple(classes))

    def counts(self) -> dict[str, dict[str, int]]:
        """Points per image and class: ``{stem: {class: count}}`` (every class listed)."""
        out: dict[str, dict[str, int]] = {}
        for stem in self.stems:
            sel = self.class_name[self.image == stem]
            out[stem] = {c: int((sel == c).sum()) for c in self.class_names}
        return out

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> PointTable:
        """A table without points."""
        return cls(image=np.empty(0, dtype=object), coords=np.empty((0, 3)),
                   class_name=np.empty(0, dtype=object), class_names=tuple(class_names))

    @classmethod
    def concat(cls, tables: Sequence[PointTable], *, class_names: Sequence[str] | None = None) -> PointTable:
        """Join tables; class order is ``class_names``, else the sorted union of names."""
        if not tables:
            return cls.empty(class_names or ())
        names = tuple(class_names) if class_names else tuple(sorted({c for t in tables for c in t.class_names}))
        return cls(
            image=np.concatenate([t.image for t in tables]),
            coords=np.concatenate([t.coords for t in tables]),
            class_name=np.concatenate([t.class_name for t in tables]),
            class_names=names,
        )


def parse_classes(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Parse ``--classes a,b,c`` (or a sequence) into a tuple; ``None`` / empty → ``None``."""
    return parse_names(text, what="--classes", error=PointsError)


def check_name(text: str, *, what: str, path: Path, where: str) -> str:
    """``text`` (stripped) if it holds no control characters (NUL, newline ...); PointsError otherwise."""
    text = text.strip()
    bad = next((ch for ch in text if ord(ch) < 32 or ord(ch) == 127), None)
    if bad is not None:
        raise PointsError(
            f"{path.name} {where}: the {what} {text[:40]!r} contains the control character {bad!r}; "
            "expected printable text"
        )
    return text


def read_error(path: Path, exc: BaseException) -> PointsError:
    """One-line PointsError for an OS, encoding or csv-module failure while reading ``path``."""
    if isinstance(exc, PermissionError):
        return PointsError(f"cannot read points file '{path}': permission denied")
    if isinstance(exc, UnicodeDecodeError):
        return PointsError(f"'{path.name}' is not UTF-8 text: {exc.reason} at byte {exc.start}")
    if isinstance(exc, csv.Error):
        return PointsError(f"'{path.name}' is not a readable table: {exc}")
    if isinstance(exc, IsADirectoryError):
        return PointsError(f"points file '{path}' is a folder; expected a file")
    if isinstance(exc, OSError):
        return PointsError(f"cannot read points file '{path}': {exc.strerror or exc}")
    return PointsError(f"cannot read points file '{path.name}': {exc}")


def parse_float(text: str, *, what: str, path: Path, line: int, allow_empty: bool = False) -> float:
    """A finite float from a table cell; empty gives NaN when ``allow_empty``; PointsError otherwise."""
    text = text.strip()
    if not text and allow_empty:
        return math.nan
    return finite_number(text, label=f"{path.name} line {line}: {what}")


def finite_number(text: str, *, label: str) -> float:
    """``text`` as a finite float; a PointsError starting with ``label`` names the bad value otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise PointsError(f"{label} must be a number; found {text[:40]!r}") from None
    if not math.isfinite(value):
        raise PointsError(f"{label} must be a finite number; found {text[:40]!r}")
    return value


def read_points_csv(path: str | Path, *, classes: Sequence[str] | None = None) -> PointTable:
    """Read a canonical points CSV (``image,z,y,x,class``).

    Parameters
    ----------
    path : the CSV file.
    classes : class order; every class in the file must be listed. Default: sorted names in the file.

    Raises
    ------
    PointsError
        Missing columns, non-numeric coordinates, empty image or class names, no points, or a class
        not in ``classes``.
    """
    path = Path(path)
    if not path.exists():
        raise PointsError(f"points file '{path}' does not exist")
    if not path.is_file():
        raise PointsError(f"points file '{path}' is not a regular file")
    try:
        return _read_canonical(path, classes)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise read_error(path, exc) from None


def _read_canonical(path: Path, classes: Sequence[str] | None) -> PointTable:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise PointsError(f"points file '{path.name}' is empty; expected a header {','.join(CANONICAL_COLUMNS)}")
        cols = [h.strip().lower() for h in header]
        missing = [c for c in CANONICAL_COLUMNS if c not in cols]
        if missing:
            raise PointsError(
                f"points file '{path.name}' lacks column(s) {missing}; expected header "
                f"{','.join(CANONICAL_COLUMNS)}, found {','.join(header)}"
            )
        idx = {c: cols.index(c) for c in CANONICAL_COLUMNS}
        images: list[str] = []
        coords: list[tuple[float, float, float]] = []
        names: list[str] = []
        for line, row in enumerate(reader, start=2):
            if not row or all(not v.strip() for v in row):
                continue
            if len(row) < len(cols):
                raise PointsError(f"{path.name} line {line}: expected {len(cols)} fields, found {len(row)}")
            image = check_name(row[idx["image"]], what="image name", path=path, where=f"line {line}")
            cname = check_name(row[idx["class"]], what="class name", path=path, where=f"line {line}")
            if not image:
                raise PointsError(f"{path.name} line {line}: the image name is empty")
            if not cname:
                raise PointsError(f"{path.name} line {line}: the class name is empty")
            z = parse_float(row[idx["z"]], what="z", path=path, line=line, allow_empty=True)
            y = parse_float(row[idx["y"]], what="y", path=path, line=line)
            x = parse_float(row[idx["x"]], what="x", path=path, line=line)
            images.append(image)
            coords.append((z, y, x))
            names.append(cname)
    if not coords:
        raise PointsError(f"points file '{path.name}' has a header but no points")
    if classes is not None:
        classes = tuple(classes)
        unknown = sorted(set(names) - set(classes))
        if unknown:
            raise PointsError(f"'{path.name}' has classes {unknown} not among --classes {list(classes)}")
    return PointTable(
        image=np.array(images, dtype=object), coords=np.array(coords, dtype=np.float64),
        class_name=np.array(names, dtype=object), class_names=tuple(classes) if classes else (),
    )


def _fmt(v: float) -> str:
    if math.isnan(v):
        return ""
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def write_points_csv(path: str | Path, table: PointTable) -> Path:
    """Write ``table`` as a canonical points CSV, atomically (nothing is left on error).

    Rows are written in the table's order; integral coordinates are written without decimals.
    """
    from pointseg_cli.io.images import atomic_output

    path = Path(path)
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CANONICAL_COLUMNS)
        for image, (z, y, x), cname in zip(table.image, table.coords, table.class_name, strict=True):
            writer.writerow([image, _fmt(z), _fmt(y), _fmt(x), cname])
    log.info("wrote %d points to %s", len(table), path)
    return path
