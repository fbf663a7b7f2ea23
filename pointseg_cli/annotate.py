"""Turning point annotations (or instance masks) into the canonical points table.

This is the library behind ``pointseg annotate-import``. Two entry points:

:func:`import_points`
    Read points files in any supported format (:mod:`pointseg_cli.io.point_formats`), assign each
    point to an image, and validate it against that image's shape, read from metadata only.
:func:`points_from_masks`
    Make one point per labelled instance of label images (the simulated annotator used by the
    experiments), optionally jittered like a human click.

Image assignment, in order of precedence: ``image=NAME`` (every point goes to that image); an
image column in the file (CSV ``image``/``filename`` column, Cell Counter ``Image_Filename``); the
points file's own name matched against the image stems -- first the whole name without its
extension (``a.csv`` → ``a``), then with further dotted parts removed (``a.points.csv`` → ``a``),
then without a ``CellCounter_`` prefix.

Validation: unknown images, 3-D points for a 2-D image and 2-D points for a 3-D image, unknown
classes (vs ``classes``), empty files and malformed values always raise
:class:`~pointseg_cli.errors.PointsError`. Points outside the image and duplicate points (same
image and same pixel after rounding) raise too unless ``drop_invalid``, which drops them (for
duplicates the first one is kept) and counts what was dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg_cli.errors import InputError, PointsError, check_choice
from pointseg_cli.io.images import ImageInfo, find_images, image_stem, read_info
from pointseg_cli.io.masks import mask_files, read_labels
from pointseg_cli.io.point_formats import FORMATS, RawPoints, read_point_file
from pointseg_cli.io.points import PointTable
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ImportResult:
    """The imported points and what happened on the way.

    Attributes
    ----------
    table : the canonical points (rows grouped by image, input order within an image).
    images : stem → spatial shape of every image that received points.
    images_without_points : stems of images in the image folder that received none.
    dropped_out_of_bounds, dropped_duplicates : points removed by ``drop_invalid``.
    sources : the files read.
    """

    table: PointTable
    images: dict[str, tuple[int, ...]]
    images_without_points: tuple[str, ...] = ()
    dropped_out_of_bounds: int = 0
    dropped_duplicates: int = 0
    sources: tuple[Path, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.dropped_out_of_bounds < 0 or self.dropped_duplicates < 0:
            raise ValueError("dropped counts must be >= 0")

    def counts(self) -> dict[str, dict[str, int]]:
        """Points per image and class, ``{stem: {class: n}}``."""
        return self.table.counts()


def image_infos(images: str | Path | Sequence[str | Path], *, axes: str | None = None) -> dict[str, ImageInfo]:
    """Metadata of every image in a folder (or list), keyed by stem; pixels are not read."""
    items = [images] if isinstance(images, str | Path) else list(images)
    infos: dict[str, ImageInfo] = {}
    for path in find_images(items):
        info = read_info(path, axes=axes)
        if info.stem in infos:
            raise InputError(
                f"two images share the stem '{info.stem}': '{infos[info.stem].path.name}' and '{path.name}'"
            )
        infos[info.stem] = info
    return infos


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
            raise PointsError(f"--image {image!r}: no image with stem '{stem}' among {_listing(infos)}")
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
        f"given, and no image stem matches its name (expected one of {_listing(infos)})"
    )


def _listing(infos: dict[str, ImageInfo], limit: int = 5) -> str:
    stems = sorted(infos)
    more = f", … ({len(stems)} in all)" if len(stems) > limit else ""
    return ", ".join(stems[:limit]) + more if stems else "(no images)"


def _assign_classes(raw: RawPoints, classes: tuple[str, ...] | None, default_class: str) -> np.ndarray:
    names = raw.class_name.astype(object)
    missing = names == ""
    if missing.any():
        fill = default_class
        if classes is not None and default_class not in classes:
            if len(classes) > 1:
                raise PointsError(
                    f"'{raw.source.name}': {int(missing.sum())} points have no class and --classes lists "
                    f"{len(classes)} classes {list(classes)} without '{default_class}'; add a class column, "
                    "pass a single class, or set --default-class"
                )
            fill = classes[0]
        names[missing] = fill
    if classes is not None:
        unknown = sorted(set(names.tolist()) - set(classes))
        if unknown:
            raise PointsError(f"'{raw.source.name}' has classes {unknown} not among --classes {list(classes)}")
    return names


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
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Read points files, assign them to images and validate them.

    Parameters
    ----------
    inputs : points files (any mix of supported formats when ``fmt='auto'``).
    images : image folder (or files/globs) whose shapes the points are checked against.
    fmt : ``auto``, ``csv``, ``napari``, ``qupath`` or ``cellcounter``.
    image : assign every point to this image (name or stem).
    classes : class order (ids 1..K); every class used must be listed. Default: sorted names.
    drop_invalid : drop out-of-bounds and duplicate points instead of raising.
    axes : axes override for reading the image metadata (e.g. ``"CZYX"``).
    progress : optional ``progress(task, done, total)`` callback, called once per file.
    default_class : class of points whose file gives none; if ``classes`` does not list it, the single
        class in ``classes`` is used (several classes without it is an error).

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
                f"'{raw.source.name}' refers to image(s) {unknown} not found among {_listing(infos)}"
            )
        names = _assign_classes(raw, class_tuple, default_class)
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


# --------------------------------------------------------------------------------------------
# simulated annotation from instance masks


def _instance_point(mask: np.ndarray) -> np.ndarray:
    """Interior pixel of a boolean instance mask nearest its centroid, ``(ndim,)`` int64.

    Candidates are the pixels at least 2 px from the instance's edge (all pixels of thinner
    instances), so the point is inside even for concave shapes whose centroid is not.
    """
    from scipy.ndimage import distance_transform_edt

    depth = distance_transform_edt(np.pad(mask, 1))[tuple(slice(1, -1) for _ in mask.shape)]
    cand = np.argwhere(depth >= min(2.0, float(depth.max())))
    centroid = np.argwhere(mask).mean(axis=0)
    return cand[int(np.argmin(((cand - centroid) ** 2).sum(axis=1)))]


def instance_points(
    labels: np.ndarray, *, jitter: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """One point per instance of a label image.

    Parameters
    ----------
    labels : numpy.ndarray, shape (Y, X) or (Z, Y, X), integer
        Instance ids; 0 is background.
    jitter : maximum offset in pixels; the point is drawn uniformly among the instance's pixels
        within this distance of the interior point, so it always stays inside the instance.
    rng : random generator used for the jitter.

    Returns
    -------
    numpy.ndarray, shape (N, ndim), int64
        Pixel indices, one row per instance in increasing id order.
    """
    from scipy.ndimage import find_objects

    rng = rng or np.random.default_rng(0)
    out = []
    for lab, box in enumerate(find_objects(labels), start=1):
        if box is None:
            continue
        mask = labels[box] == lab
        offset = np.array([s.start for s in box])
        point = _instance_point(mask)
        if jitter > 0:
            pix = np.argwhere(mask)
            near = pix[((pix - point) ** 2).sum(axis=1) <= jitter**2]
            point = near[rng.integers(near.shape[0])]
        out.append(point + offset)
    return np.array(out, dtype=np.int64).reshape(-1, labels.ndim)


def points_from_masks(
    masks: str | Path | Sequence[str | Path],
    *,
    images: str | Path | Sequence[str | Path] | None = None,
    mask_class: str = "nucleus",
    jitter: float = 0.0,
    seed: int = 0,
    axes: str | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Simulate point annotation: one point per labelled instance of each mask.

    Parameters
    ----------
    masks : folder (or files/globs) of instance label images; ``a.labels.tif``, ``a_mask.tif`` or
        ``a.tif`` all belong to image ``a`` (see :mod:`pointseg_cli.io.masks`). If any of the files has such
        a marker, only those are used, so a folder holding images beside their masks works.
    images : optional image folder; every mask must then match an image by stem and spatial shape.
    mask_class : the class name given to every point.
    jitter : see :func:`instance_points`; seeded by ``seed`` so runs are reproducible.
    axes : axes override used for both masks and images.
    progress : optional ``progress(task, done, total)`` callback, called once per mask.
    """
    if jitter < 0:
        raise InputError(f"--jitter must be >= 0 pixels; got {jitter}")
    if not mask_class.strip():
        raise InputError("--mask-class must not be empty")
    by_stem = mask_files(masks)
    infos = image_infos(images, axes=axes) if images is not None else None
    rng = np.random.default_rng(seed)
    parts: list[PointTable] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (stem, path) in enumerate(by_stem.items()):
        if progress is not None:
            progress("masks", i, len(by_stem))
        labels = read_labels(path, axes=axes, instances=True)
        if infos is not None:
            if stem not in infos:
                raise InputError(f"mask '{path.name}' matches no image (stem '{stem}') among {_listing(infos)}")
            if infos[stem].spatial_shape != labels.shape:
                raise InputError(
                    f"mask '{path.name}' has shape {labels.shape} but image '{stem}' has spatial shape "
                    f"{infos[stem].spatial_shape}"
                )
        pix = instance_points(labels, jitter=jitter, rng=rng).astype(np.float64)
        shapes[stem] = labels.shape
        if pix.shape[0] == 0:
            log.warning("mask '%s' has no labelled instances", path.name)
            continue
        coords = pix if labels.ndim == 3 else np.column_stack([np.full(pix.shape[0], np.nan), pix])
        parts.append(PointTable(image=[stem] * pix.shape[0], coords=coords,
                                class_name=[mask_class] * pix.shape[0], class_names=(mask_class,)))
    if not parts:
        raise InputError("the masks hold no labelled instances (every pixel is 0)")
    table = PointTable.concat(parts, class_names=(mask_class,))
    known = set(infos) if infos is not None else set(shapes)
    return ImportResult(
        table=table,
        images={s: shapes[s] for s in table.stems},
        images_without_points=tuple(sorted(known - set(table.stems))),
        sources=tuple(by_stem.values()),
    )
