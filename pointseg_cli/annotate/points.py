"""Reading point annotation files into the canonical points table (``pointseg annotate-import``).

:func:`import_points` reads points files in any supported format
(:mod:`pointseg_cli.io.point_formats`), assigns each point to an image and a class, and validates
it against that image's shape, read from metadata only.

Image assignment, in order of precedence: ``image=NAME`` (every point goes to that image); an
image column in the file (CSV ``image``/``filename`` column, Cell Counter ``Image_Filename``); the
points file's own name matched against the image stems -- first the whole name without its
extension (``a.csv`` → ``a``), then with further dotted parts removed (``a.points.csv`` → ``a``),
then without a ``CellCounter_`` prefix.

Classes: points without a class get ``default_class``; then ``class_map`` renames classes
(``{"Tumor": "tumour"}``, keys compared without regard to case); then, when ``classes`` is given,
each name is matched to it without regard to case and takes its spelling (``Nucleus`` →
``nucleus``).

Validation: unknown images, 3-D points for a 2-D image and 2-D points for a 3-D image, unknown
classes (vs ``classes``), empty files and malformed values always raise
:class:`~pointseg_cli.errors.PointsError`. Points outside the image and duplicate points (same
image and same pixel after rounding) raise too unless ``drop_invalid``, which drops them (for
duplicates the first one is kept) and counts what was dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pointseg_cli.annotate.common import ImportResult, image_infos, listing, match_class, rename_class
from pointseg_cli.errors import InputError, PointsError, check_choice
from pointseg_cli.io.images import ImageInfo, image_stem
from pointseg_cli.io.point_formats import FORMATS, RawPoints, read_point_file
from pointseg_cli.io.points import PointTable
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

def _file_candidates(path: Path) -> list[str]:
    name = path.name
    parts = name.split(".")
    out = [".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1)] if len(parts) > 1 else [name]
    for cand in list(out):
        if cand.lower().startswith("cellcounter_"):
            out.append(cand[len("cellcounter_"):])
    return [c for c in out if c]


def _assign_images(raw: RawPoints, infos: dict[str, ImageInfo], image: str | None) -> np.ndarray:
    n = len(raw)
    if image is not None:
        stem = image_stem(Path(image).name)
        if stem not in infos:
            raise PointsError(f"--image {image!r}: no image with stem '{stem}' among {listing(infos)}")
        return np.full(n, stem, dtype=object)
    named = raw.image != ""
    # Cell Counter's Image_Filename is only a hint: a renamed image is still found by the file name.
    hint_only = raw.format == "cellcounter" and not set(raw.image.tolist()) <= set(infos)
    if named.all() and not hint_only:
        return raw.image.astype(object)
    if named.any() and not hint_only:
        raise PointsError(
            f"'{raw.source.name}': {int((~named).sum())} of {n} points have no image name; fill the image "
            "column for every row or pass --image"
        )
    for cand in _file_candidates(raw.source):
        if cand in infos:
            return np.full(n, cand, dtype=object)
    if hint_only:
        return raw.image.astype(object)  # reported as an unknown image by the caller
    raise PointsError(
        f"cannot tell which image '{raw.source.name}' belongs to: it has no image column, no --image was "
        f"given, and no image stem matches its name (expected one of {listing(infos)})"
    )


def _assign_classes(
    raw: RawPoints, classes: tuple[str, ...] | None, default_class: str, class_map: Mapping[str, str]
) -> np.ndarray:
    names = raw.class_name.astype(object)
    missing = names == ""
    names[missing] = default_class
    names = np.array([rename_class(n, class_map) for n in names], dtype=object).reshape(names.shape)
    if classes is None:
        return names
    if missing.any() and match_class(rename_class(default_class, class_map), classes) is None:
        if len(classes) > 1:
            raise PointsError(
                f"'{raw.source.name}': {int(missing.sum())} points have no class and --classes lists "
                f"{len(classes)} classes {list(classes)} without '{default_class}'; add a class column, "
                "pass a single class, or set --default-class"
            )
        names[missing] = classes[0]
    matched = np.array([match_class(n, classes) for n in names], dtype=object).reshape(names.shape)
    unknown = sorted({n for n, m in zip(names.tolist(), matched.tolist(), strict=True) if m is None})
    if unknown:
        raise PointsError(
            f"'{raw.source.name}' has classes {unknown} not among --classes {list(classes)}; "
            "rename them with --class-map OLD=NEW"
        )
    return matched


def _fix_z(raw: RawPoints, stems: np.ndarray, infos: dict[str, ImageInfo]) -> np.ndarray:
    """Map z to each image's dimensionality; raise for 2-D/3-D mismatches."""
    coords = raw.coords.copy()
    for stem in np.unique(stems):
        info = infos[stem]
        sel = stems == stem
        z = coords[sel, 0]
        has_z = ~np.isnan(z)
        if raw.z_is_stack_position:
            z = np.where(has_z, np.floor(z / info.channels), z)
            if info.ndim == 2:
                on_first = has_z & (z == 0)
                z[on_first] = np.nan
                has_z = has_z & ~on_first
        if info.ndim == 2 and has_z.any():
            raise PointsError(
                f"'{raw.source.name}' has {int(has_z.sum())} 3-D point(s) (with z) but image '{stem}' is 2-D "
                f"{info.spatial_shape}"
            )
        if info.ndim == 3 and (~has_z).any():
            raise PointsError(
                f"'{raw.source.name}' has {int((~has_z).sum())} 2-D point(s) (no z) but image '{stem}' is 3-D "
                f"(Z, Y, X) = {info.spatial_shape}"
            )
        coords[sel, 0] = z
    return coords


def _pixels(coords: np.ndarray, ndim: int) -> np.ndarray:
    return np.rint(coords[:, 3 - ndim:]).astype(np.int64)


def _validate(table: PointTable, infos: dict[str, ImageInfo], *, drop_invalid: bool) -> tuple[PointTable, int, int]:
    keep = np.ones(len(table), dtype=bool)
    n_oob = n_dup = 0
    for stem in table.stems:
        info = infos[stem]
        idx = np.flatnonzero(table.image == stem)
        pix = _pixels(table.coords[idx], info.ndim)
        shape = np.asarray(info.spatial_shape)
        outside = ((pix < 0) | (pix >= shape)).any(axis=1)
        if outside.any():
            if not drop_invalid:
                first = table.coords[idx[outside][0], 3 - info.ndim:]
                axes = "ZYX"[3 - info.ndim:]
                example = ", ".join(f"{a.lower()}={v:g}" for a, v in zip(axes, first, strict=True))
                raise PointsError(
                    f"{int(outside.sum())} point(s) lie outside image '{stem}' ({', '.join(axes)}) = "
                    f"{info.spatial_shape}, e.g. ({example}); pass --drop-invalid to drop them"
                )
            keep[idx[outside]] = False
            n_oob += int(outside.sum())
        inside = idx[~outside]
        _, first_idx = np.unique(pix[~outside], axis=0, return_index=True)
        dup = np.ones(inside.size, dtype=bool)
        dup[first_idx] = False
        if dup.any():
            if not drop_invalid:
                where = pix[~outside][dup][0]
                raise PointsError(
                    f"{int(dup.sum())} duplicate point(s) in image '{stem}' (same pixel as an earlier point, "
                    f"e.g. {tuple(int(v) for v in where)}); pass --drop-invalid to keep only the first"
                )
            keep[inside[dup]] = False
            n_dup += int(dup.sum())
    return table.subset(keep), n_oob, n_dup


def import_points(
    inputs: Sequence[str | Path],
    *,
    images: str | Path | Sequence[str | Path],
    fmt: str = "auto",
    image: str | None = None,
    classes: Sequence[str] | None = None,
    drop_invalid: bool = False,
    axes: str | None = None,
    default_class: str = "object",
    class_map: Mapping[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Read points files, assign them to images and validate them.

    Parameters
    ----------
    inputs : points files (any mix of supported formats when ``fmt='auto'``).
    images : image folder (or files/globs) whose shapes the points are checked against.
    fmt : ``auto``, ``csv``, ``napari``, ``qupath`` or ``cellcounter``.
    image : assign every point to this image (name or stem).
    classes : class order (ids 1..K); every class used must be listed (matched without regard to
        case). Default: sorted names.
    drop_invalid : drop out-of-bounds and duplicate points instead of raising.
    axes : axes override for reading the image metadata (e.g. ``"CZYX"``).
    progress : optional ``progress(task, done, total)`` callback, called once per file.
    default_class : class of points whose file gives none; if ``classes`` does not list it, the single
        class in ``classes`` is used (several classes without it is an error).
    class_map : renames classes, ``{old: new}`` (keys matched without regard to case), applied
        before the match with ``classes``.

    Returns
    -------
    ImportResult
    """
    if not inputs:
        raise InputError("no points files given; pass one or more files (or use --from-masks)")
    check_choice("--format", fmt, FORMATS)
    class_tuple = tuple(classes) if classes else None
    infos = image_infos(images, axes=axes)
    parts: list[PointTable] = []
    for i, path in enumerate(inputs):
        if progress is not None:
            progress("points files", i, len(inputs))
        raw = read_point_file(path, fmt=fmt)
        stems = _assign_images(raw, infos, image)
        unknown = sorted(set(stems.tolist()) - set(infos))
        if unknown:
            raise PointsError(
                f"'{raw.source.name}' refers to image(s) {unknown} not found among {listing(infos)}"
            )
        names = _assign_classes(raw, class_tuple, default_class, class_map or {})
        coords = _fix_z(raw, stems, infos)
        parts.append(PointTable(image=stems, coords=coords, class_name=names, class_names=class_tuple or ()))
        log.info("%s: %d points (%s)", raw.source.name, len(raw), raw.format)
    table = PointTable.concat(parts, class_names=class_tuple)
    order = np.argsort(table.image, kind="stable")
    table = table.subset(order)
    table, n_oob, n_dup = _validate(table, infos, drop_invalid=drop_invalid)
    if len(table) == 0:
        raise PointsError("no valid points remain after dropping invalid ones")
    return ImportResult(
        table=table,
        images={s: infos[s].spatial_shape for s in table.stems},
        images_without_points=tuple(sorted(set(infos) - set(table.stems))),
        dropped_out_of_bounds=n_oob,
        dropped_duplicates=n_dup,
        sources=tuple(Path(p) for p in inputs),
    )
