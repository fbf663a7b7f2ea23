"""Tiny generated datasets for training tests: bright disks (2D) or balls (3D) on a dark noisy field."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pointseg_cli.io.images import write_tiff
from pointseg_cli.io.points import PointTable, write_points_csv


def make_dataset(
    folder: Path, *, n_images: int = 3, shape: tuple[int, ...] = (64, 64), n_objects: int = 6, radius: int = 6,
    seed: int = 0, rgb: bool = False,
) -> tuple[Path, Path, Path]:
    """Write images, instance masks (``masks/<stem>.labels.tif``) and a points CSV (one point per object).

    Returns ``(points_csv, image_dir, mask_dir)``.
    """
    rng = np.random.default_rng(seed)
    img_dir, mask_dir = folder / "images", folder / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    nd = len(shape)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    stems, coords = [], []
    for i in range(n_images):
        labels = np.zeros(shape, np.uint16)
        centres = []
        for _ in range(200):
            c = np.array([rng.integers(radius + 1, s - radius - 1) for s in shape])
            if all(np.abs(c - o).max() > 2 * radius + 2 for o in centres):
                centres.append(c)
            if len(centres) == n_objects:
                break
        for k, c in enumerate(centres, start=1):
            d2 = sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True))
            labels[d2 <= radius**2] = k
        img = np.where(labels > 0, 180.0, 40.0) + rng.normal(0, 8, shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        stem = f"img{i}"
        if rgb:
            img = np.stack([img, (img * 0.6).astype(np.uint8), 255 - img], axis=-1)
            write_tiff(img_dir / f"{stem}.tif", img, axes="YXC")
        else:
            write_tiff(img_dir / f"{stem}.tif", img, axes="ZYX"[-nd:])
        write_tiff(mask_dir / f"{stem}.labels.tif", labels, axes="ZYX"[-nd:])
        for c in centres:
            stems.append(stem)
            coords.append([float(c[0]) if nd == 3 else np.nan, float(c[-2]), float(c[-1])])
    table = PointTable(
        image=np.array(stems), coords=np.array(coords, dtype=np.float64),
        class_name=np.array(["cell"] * len(stems)), class_names=("cell",),
    )
    csv = write_points_csv(folder / "points.csv", table)
    return csv, img_dir, mask_dir
