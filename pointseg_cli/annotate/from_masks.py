"""Simulated annotation: one point per labelled instance of label images.

The annotator used by the experiments (and by ``pointseg annotate-import --from-masks``): the
point is the interior pixel nearest each instance's centroid, optionally jittered like a human
click.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pointseg_cli.annotate.common import ImportResult, image_infos, listing
from pointseg_cli.errors import InputError
from pointseg_cli.io.masks import mask_files, read_labels
from pointseg_cli.io.points import PointTable
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)


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


def class_map_for(mask_path: Path, stem: str) -> tuple[Path, tuple[str, ...]] | None:
    """The per-object class map ``<stem>.classes.tif`` beside a mask and its class names, if any.

    Class ids 1..K of the map are named by the lines of ``classes.txt`` in the same folder (the
    layout ``pointseg demo-data`` writes); a class map without that file is an error, since ids
    alone would give made-up names.
    """
    path = mask_path.with_name(f"{stem}.classes.tif")
    if not path.is_file():
        return None
    names_file = mask_path.with_name("classes.txt")
    if not names_file.is_file():
        raise InputError(f"class map '{path.name}' needs a classes.txt beside it naming class ids 1..K; none found")
    names = tuple(line.strip() for line in names_file.read_text(encoding="utf-8").splitlines() if line.strip())
    if not names:
        raise InputError(f"'{names_file}' is empty; expected one class name per line for class ids 1..K")
    return path, names


def _object_classes(labels: np.ndarray, classes: np.ndarray, names: Sequence[str], where: str) -> np.ndarray:
    """Class id of each instance (in increasing id order): the most frequent non-zero id inside it."""
    if classes.shape != labels.shape:
        raise InputError(f"class map '{where}' has shape {classes.shape}, its mask {labels.shape}")
    inside = labels > 0
    ids, inverse = np.unique(labels[inside], return_inverse=True)
    cls = classes[inside].astype(np.int64)
    if cls.size and (cls.min() < 0 or cls.max() > len(names)):
        raise InputError(f"class map '{where}' holds id {int(cls.max())} but classes.txt names {len(names)} classes")
    counts = np.zeros((ids.size, len(names) + 1), dtype=np.int64)
    np.add.at(counts, (inverse, cls), 1)
    counts[:, 0] = 0  # background pixels inside an object do not vote
    if np.any(counts.sum(axis=1) == 0):
        raise InputError(f"class map '{where}' is 0 (no class) over a whole labelled object")
    return counts.argmax(axis=1)


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
        ``a.tif`` all belong to image ``a`` (see :mod:`pointseg_cli.io.masks`). If any of the files
        has such a name, only those are used, so a folder holding images beside their masks works.
        Instance ids may be as large as ``2**32 - 1``.
    images : optional image folder; every mask must then match an image by stem and spatial shape.
    mask_class : the class name given to every point of a mask without a class map.
        A mask with a per-object class map beside it (``<stem>.classes.tif`` plus ``classes.txt``,
        as ``pointseg demo-data`` writes them) gives each point its object's class instead.
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
                raise InputError(f"mask '{path.name}' matches no image (stem '{stem}') among {listing(infos)}")
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
        found = class_map_for(Path(path), stem)
        if found is None:
            names, point_classes = (mask_class,), [mask_class] * pix.shape[0]
        else:
            cmap, names = found
            ids = _object_classes(labels, read_labels(cmap, axes=axes), names, cmap.name)
            point_classes = [names[i - 1] for i in ids]
        parts.append(PointTable(image=[stem] * pix.shape[0], coords=coords,
                                class_name=point_classes, class_names=tuple(names)))
    if not parts:
        raise InputError("the masks hold no labelled instances (every pixel is 0)")
    all_names = tuple(dict.fromkeys(n for part in parts for n in part.class_names))
    table = PointTable.concat(parts, class_names=all_names)
    known = set(infos) if infos is not None else set(shapes)
    return ImportResult(
        table=table,
        images={s: shapes[s] for s in table.stems},
        images_without_points=tuple(sorted(known - set(table.stems))),
        sources=tuple(by_stem.values()),
    )
