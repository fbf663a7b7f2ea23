"""The embedded default models segment typical inputs with no --model flag, offline."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from pointseg_cli import zoo
from pointseg_cli.cli.app import app
from pointseg_cli.io.images import read_image, write_tiff


def _blobs(shape: tuple[int, ...], centres: list[tuple[int, ...]], radius: float, rng) -> tuple[np.ndarray, np.ndarray]:
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    mask = np.zeros(shape, bool)
    for c in centres:
        mask |= sum((g - v) ** 2 for g, v in zip(grids, c, strict=True)) <= radius**2
    img = np.where(mask, 180.0, 12.0) + rng.normal(0, 4, shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _segment_blobs(runner, tmp_path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Write bright spheres/discs on a dark background, segment with the default model."""
    if zoo.default_model_name(kind) is None:
        pytest.skip(f"no default model for {kind} in this build")
    rng = np.random.default_rng(0)
    if kind == "2d-gray":
        centres = [(y, x) for y in range(20, 200, 45) for x in range(20, 200, 45)]
        img, mask = _blobs((200, 200), centres, 9, rng)
        axes = "YX"
    else:
        centres = [(z, y, x) for z in (12, 28) for y in range(16, 96, 32) for x in range(16, 96, 32)]
        img, mask = _blobs((40, 96, 96), centres, 7, rng)
        axes = "ZYX"
    write_tiff(tmp_path / "cells.tif", img, axes=axes)
    res = runner.invoke(app, ["--quiet", "segment", str(tmp_path / "cells.tif"), "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    labels = read_image(tmp_path / "out" / "cells.labels.tif")
    assert labels.shape == img.shape
    return labels > 0, mask


def _iou(fg: np.ndarray, mask: np.ndarray) -> float:
    return float((fg & mask).sum() / (fg | mask).sum())


def test_default_2d_model_segments_bright_nuclei(runner, tmp_path):
    fg, mask = _segment_blobs(runner, tmp_path, "2d-gray")
    assert _iou(fg, mask) > 0.5


def test_default_3d_model_detects_every_nucleus_and_nothing_else(runner, tmp_path):
    fg, mask = _segment_blobs(runner, tmp_path, "3d")
    blobs, n = ndi.label(mask)
    hit = np.unique(blobs[fg & mask])
    assert len(hit[hit > 0]) == n, f"{n - len(hit[hit > 0])} of {n} nuclei missed"
    assert (fg & mask).sum() >= 0.95 * fg.sum(), "foreground predicted outside the nuclei"


def test_default_3d_model_covers_whole_nuclei(runner, tmp_path):
    fg, mask = _segment_blobs(runner, tmp_path, "3d")
    assert _iou(fg, mask) > 0.5
