"""Sparse point maps and the Gaussian objectness baseline."""

from __future__ import annotations

import numpy as np

from pointseg_cli.train.targets import ball_offsets, gaussian_soft_labels, rasterize_points


def test_ball_offsets_counts() -> None:
    assert len(ball_offsets(0, 2)) == 1
    assert len(ball_offsets(1, 2)) == 5
    assert len(ball_offsets(1, 3)) == 7
    assert tuple(ball_offsets(2, 2)[0]) == (0, 0)


def test_rasterize_batched_with_radius_and_clipping() -> None:
    sp = np.full((2, 4, 4), -1, np.int16)
    rasterize_points(sp, np.array([[1, 0, 0]]), np.array([1]), radius=1, spatial_ndim=2)
    assert (sp[0] == -1).all()
    assert sorted(map(tuple, np.argwhere(sp[1] == 1))) == [(0, 0), (0, 1), (1, 0)]


def test_gaussian_soft_labels_values() -> None:
    soft = gaussian_soft_labels((9, 9), np.array([[4, 4]]), np.array([1]), n_classes=2, sigma=2.0)
    assert soft.shape == (3, 9, 9)
    np.testing.assert_allclose(soft.sum(0), 1.0, atol=1e-6)
    assert soft[1, 4, 4] == 1.0 and soft[2].max() == 0.0
    np.testing.assert_allclose(soft[1, 4, 6], np.exp(-4 / 8), rtol=1e-6)
    np.testing.assert_allclose(soft[1, 0, 0], np.exp(-32 / 8), rtol=1e-5)  # within 3 sigma = 6 px
