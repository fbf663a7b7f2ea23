"""Exact w search and the tuning loop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pointseg_cli.errors import InputError
from pointseg_cli.io.points import PointTable
from pointseg_cli.objectness import ObjectnessConfig
from pointseg_cli.objectness.tune import TuneSample, best_w, tune


def _iou(d: np.ndarray, fg: np.ndarray, w: float) -> float:
    pred = np.exp(-w * d) > 0.5
    return float((pred & fg).sum() / (pred | fg).sum())


def test_best_w_beats_a_dense_grid(rng: np.random.Generator) -> None:
    fg = rng.random(500) < 0.3
    d = np.where(fg, rng.gamma(1.0, 0.02, 500), rng.gamma(2.0, 0.05, 500))
    d[:5] = np.inf
    w, iou = best_w(d, fg, w_bounds=(0.1, 1e4))
    assert iou == pytest.approx(_iou(d, fg, w))
    grid = np.geomspace(0.1, 1e4, 2000)
    assert iou >= max(_iou(d, fg, g) for g in grid) - 1e-12


def test_best_w_respects_bounds() -> None:
    d = np.array([0.0, 0.001, 0.002, 5.0])
    fg = np.array([True, True, True, False])
    w, iou = best_w(d, fg, w_bounds=(1.0, 10.0))
    assert 1.0 <= w <= 10.0 and iou == 1.0
    with pytest.raises(InputError, match="no foreground"):
        best_w(d, np.zeros(4, bool))


def _disks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, PointTable]:
    yy, xx = np.mgrid[:40, :40]
    centres = [(10, 10), (28, 12), (20, 30)]
    mask = np.zeros((40, 40), np.int32)
    for i, (cy, cx) in enumerate(centres, 1):
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] = i
    image = np.where(mask > 0, 200.0, 20.0) + rng.normal(0, 3, mask.shape)
    coords = np.array([(math.nan, cy, cx) for cy, cx in centres])
    table = PointTable(image=np.array(["a"] * 3), coords=coords, class_name=np.array(["cell"] * 3),
                       class_names=("cell",))
    return image, mask, table


def test_tune_finds_the_disks(rng: np.random.Generator) -> None:
    image, mask, table = _disks(rng)
    res = tune([TuneSample(name="a", image=image, points=table, mask=mask)], ObjectnessConfig(),
               diffusion_grid=(0, 3))
    assert [row[0] for row in res.table] == [0, 3]
    assert res.iou > 0.9
    assert res.apply(ObjectnessConfig()).w == res.w


def test_tune_sample_shape_mismatch(rng: np.random.Generator) -> None:
    image, mask, table = _disks(rng)
    with pytest.raises(InputError, match="spatial shape"):
        TuneSample(name="a", image=image, points=table, mask=mask[:5])
