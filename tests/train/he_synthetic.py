"""Tiny H&E-like RGB training sets (demo-data tiles) with one point per nucleus, for stain tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointseg_cli.demo import make_he_tile
from pointseg_cli.io.images import write_tiff
from pointseg_cli.io.points import PointTable, write_points_csv
from pointseg_cli.preprocess.stain import apply_stains, fit_stains

#: Another lab's stain vectors and strengths (used to render the same tissue "shifted").
SHIFTED = {"method": "vahadane", "matrix": [[0.60, 0.15], [0.75, 0.97], [0.30, 0.15]], "max": [0.8, 1.3]}


def shift_stains(image: np.ndarray) -> np.ndarray:
    """The same tissue rendered with the :data:`SHIFTED` stains."""
    return apply_stains(image, fit_stains(image), SHIFTED)


def make_he_dataset(
    folder: Path, *, n_images: int = 2, shape: tuple[int, int] = (64, 64), seed: int = 0
) -> tuple[Path, Path, Path, Path]:
    """Write H&E tiles ``images/he{i}.tif``, masks, ``points.csv`` (class ``nucleus``) and ``target.tif``.

    Returns ``(points_csv, image_dir, mask_dir, target)``.
    """
    img_dir, mask_dir = folder / "images", folder / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    stems, coords = [], []
    for i in range(n_images):
        sample = make_he_tile(shape, seed=seed * 100 + i, difficulty="easy")
        stem = f"he{i}"
        write_tiff(img_dir / f"{stem}.tif", sample.image, axes="YXC")
        write_tiff(mask_dir / f"{stem}.labels.tif", (sample.labels > 0).astype(np.uint8), axes="YX")
        for label in range(1, int(sample.labels.max()) + 1):
            ys, xs = np.nonzero(sample.labels == label)
            if len(ys):
                mid = len(ys) // 2  # a pixel of the nucleus itself (centroids may fall outside)
                stems.append(stem)
                coords.append([np.nan, float(ys[mid]), float(xs[mid])])
    table = PointTable(
        image=np.array(stems), coords=np.array(coords, dtype=np.float64),
        class_name=np.array(["nucleus"] * len(stems)), class_names=("nucleus",),
    )
    csv = write_points_csv(folder / "points.csv", table)
    target = write_tiff(folder / "target.tif", make_he_tile(shape, seed=seed * 100 + 99).image, axes="YXC")
    return csv, img_dir, mask_dir, target
