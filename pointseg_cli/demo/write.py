"""Write a seeded demo data set to disk: images, ground truth, and (for some kinds) points and a split."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.demo._common import DemoSample
from pointseg_cli.demo.registry import DIFFICULTIES, get_kind, parse_size
from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.progress import ProgressCallback, noop_progress

log = logging.getLogger(__name__)

_MAX_N = 10_000
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DemoDataset:
    """What :func:`generate_demo_data` wrote (paths in generation order).

    ``points`` is the ``points.csv`` with one click per object (kinds that write one);
    ``split`` the ``split.csv`` listing each cell's split, and ``splits`` the image stems of each
    split (kinds with cells); ``points_trainval`` holds the clicks of the train and validation
    cells only, ready for ``pointseg train``.
    """

    out_dir: Path
    kind: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    classes: tuple[Path, ...]
    class_names: tuple[str, ...]
    n_objects: tuple[int, ...]
    points: Path | None = None
    split: Path | None = None
    points_trainval: Path | None = None
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)


def assign_splits(n: int) -> list[str]:
    """Split of each of ``n`` samples: the last ~20 % test, the ~20 % before them validation.

    One sample is ``train``; two are ``train, test``; from three on there is at least one
    validation and one test sample.
    """
    if n == 1:
        return ["train"]
    if n == 2:
        return ["train", "test"]
    n_test = n_val = max(1, round(0.2 * n))
    return ["train"] * (n - n_test - n_val) + ["val"] * n_val + ["test"] * n_test


def object_clicks(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One click per object: the object's voxel nearest to its centroid.

    Returns
    -------
    ids : (N,) int
        Instance ids ``1..N`` (those present).
    coords : (N, ndim) int
        Pixel coordinates of each click; always inside the object, also for concave ones.
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    coords = np.zeros((len(ids), labels.ndim), int)
    boxes = ndi.find_objects(labels)
    for row, i in enumerate(ids):
        box = boxes[int(i) - 1]
        inside = np.argwhere(labels[box] == i)
        centre = inside.mean(0)
        coords[row] = inside[np.argmin(((inside - centre) ** 2).sum(1))] + [s.start for s in box]
    return ids.astype(int), coords


def _point_rows(sample: DemoSample) -> list[tuple[str, str, int, int, str]]:
    _, coords = object_clicks(sample.labels)
    rows = []
    for c in coords:
        cls = sample.class_names[int(sample.classes[tuple(c)]) - 1]
        z, y, x = ("", *c) if len(c) == 2 else c
        rows.append((sample.name, str(z), int(y), int(x), cls))
    return rows


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    from pointseg_cli.io.writers import atomic_output

    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _cell_rows(sample: DemoSample, split: str) -> list[list[object]]:
    """One row per cell: image, cell, split, granules per class, total."""
    cell_of = np.asarray(sample.cell_of)
    ids = np.unique(sample.labels)[1:]
    first = np.zeros(len(cell_of), int)  # class of each instance id
    flat_l, flat_c = sample.labels.ravel(), sample.classes.ravel()
    first[flat_l[flat_l > 0]] = flat_c[flat_l > 0]
    rows = []
    for cell in range(1, int(cell_of.max()) + 1):
        mine = ids[cell_of[ids] == cell]
        per_class = np.bincount(first[mine], minlength=len(sample.class_names) + 1)[1:]
        rows.append([sample.name, f"{sample.name}_c{cell:02d}", split, *per_class.tolist(), int(per_class.sum())])
    return rows


def generate_demo_data(
    out_dir: str | Path,
    *,
    kind: str,
    n: int = 4,
    size: Sequence[int] | int | str | None = None,
    seed: int = 0,
    difficulty: str = "medium",
    progress: ProgressCallback | None = None,
) -> DemoDataset:
    """Write ``n`` seeded samples of ``kind`` with ground truth into ``out_dir`` (created if needed).

    Sample ``i`` depends only on ``(seed, i)``, so ``--n 8`` extends ``--n 4`` with four new
    samples. Every file is written atomically; existing files of the same name are replaced.

    Parameters
    ----------
    out_dir : folder to write ``<name>.tif``, ``<name>.masks.tif``, ``<name>.classes.tif`` and
        ``classes.txt`` into (names: ``nuclei3d_000``, ``he_000``, ``gray_000``, ``sim_000`` ...);
        ``2d-gray`` and ``3d-sim`` also write ``points.csv``, and ``3d-sim`` ``split.csv`` and
        ``points.trainval.csv``.
    kind : one of :data:`pointseg_cli.demo.KINDS`.
    n : number of samples, 1 to 10000.
    size : spatial shape ``(Z, Y, X)`` or ``(Y, X)``, or a string like ``"64x256x256"``.
    seed, difficulty : passed on to the kind's generator.
    """
    from pointseg_cli.io.ome import write_ome_tiff
    from pointseg_cli.io.writers import atomic_output, write_tiff

    spec = get_kind(kind)
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = parse_size(size, kind=kind)
    if not 1 <= int(n) <= _MAX_N:
        raise ConfigError(f"n must be between 1 and {_MAX_N}; got {n}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output must be a folder; {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or noop_progress
    n = int(n)
    splits = assign_splits(n)
    images, labels, classes, counts = [], [], [], []
    points: list[tuple] = []
    cells: list[list[object]] = []
    for i in range(n):
        progress("demo data", i, n)
        name = f"{spec.prefix}_{i:03d}"
        sample = spec.make(shape, seed=np.random.SeedSequence([int(seed), i]), difficulty=difficulty, name=name)
        spatial = sample.axes.replace("C", "")
        meta = {
            "generator": f"pointseg demo-data --kind {kind}",
            "seed": int(seed),
            "index": i,
            "difficulty": difficulty,
            "classes": list(spec.class_names),
        }
        pairs = [(f"{name}.tif", sample.image, sample.axes, None, meta),
                 (f"{name}.masks.tif", sample.labels, spatial, "zlib", None),
                 (f"{name}.classes.tif", sample.classes, spatial, "zlib", None)]
        written = []
        for fname, data, axes, comp, md in pairs:
            if sample.voxel_size is None:
                written.append(write_tiff(out / fname, data, axes=axes, compression=comp, metadata=md))
            else:
                written.append(write_ome_tiff(out / fname, data, axes=axes, voxel_size=sample.voxel_size,
                                              compression=comp, metadata=md))
        images.append(written[0])
        labels.append(written[1])
        classes.append(written[2])
        counts.append(int(sample.labels.max()))
        if spec.writes_points:
            points.extend(row + (splits[i],) for row in _point_rows(sample))
        if sample.cell_of is not None:
            cells.extend(_cell_rows(sample, splits[i]))
    with atomic_output(out / "classes.txt") as tmp:
        Path(tmp).write_text("".join(f"{c}\n" for c in spec.class_names))
    result = DemoDataset(out, kind, tuple(images), tuple(labels), tuple(classes), spec.class_names, tuple(counts))
    extra: dict[str, object] = {}
    header = ("image", "z", "y", "x", "class")
    if points:
        extra["points"] = _write_csv(out / "points.csv", header, [p[:5] for p in points])
    if cells:
        extra["split"] = _write_csv(out / "split.csv", ("image", "cell", "split", *spec.class_names, "total"), cells)
        extra["points_trainval"] = _write_csv(
            out / "points.trainval.csv", header, [p[:5] for p in points if p[5] != "test"]
        )
        stems = [p.name[: -len(".tif")] for p in images]
        extra["splits"] = {s: tuple(st for st, sp in zip(stems, splits, strict=True) if sp == s) for s in SPLITS}
    progress("demo data", n, n)
    log.info("wrote %d %s samples to %s", n, kind, out)
    return replace(result, **extra)
