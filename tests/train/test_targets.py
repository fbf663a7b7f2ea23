"""Sparse point maps, the Gaussian objectness baseline and the centre-map targets."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.train.targets import (
    ball_offsets,
    center_covariances,
    fixed_covariance,
    gaussian_soft_labels,
    grown_objects,
    mask_center_target,
    object_moments,
    point_center_target,
    rasterize_points,
    render_gaussians,
)


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


# ---------------------------------------------------------------------------------------------- centre targets


def test_grown_objects_marks_objects_background_and_unknown() -> None:
    regions = np.array([[1, 1, 1, 2, 2]])
    obj = np.array([[0.9, 0.3, 0.05, 0.2, 0.8]])
    bg = np.array([[False, False, False, True, False]])
    assert grown_objects(regions, obj, bg).tolist() == [[1, -1, 0, 0, 2]]


def test_object_moments_of_a_box() -> None:
    lab = np.zeros((10, 12), np.int32)
    lab[2:5, 1:10] = 1  # 3 x 9 box
    counts, means, covs = object_moments(lab, 2)
    assert counts.tolist() == [27, 0]
    np.testing.assert_allclose(means[0], [3.0, 5.0])
    np.testing.assert_allclose(np.diag(covs[0]), [(3**2 - 1) / 12, (9**2 - 1) / 12])
    assert covs[0, 0, 1] == 0 and np.isnan(means[1]).all()


def test_fixed_covariance_follows_spacing() -> None:
    np.testing.assert_allclose(np.diag(fixed_covariance(2.0, 3)), [4, 4, 4])
    # Z sampled twice as coarsely: half the sigma in voxels along Z, round in physical space
    np.testing.assert_allclose(np.diag(fixed_covariance(2.0, 3, (2.0, 1.0, 1.0))), [1, 4, 4])


def test_adaptive_covariance_follows_the_object_and_falls_back_when_tiny() -> None:
    covs = np.array([np.diag([1.0, 16.0]), np.diag([9.0, 9.0])])
    out = center_covariances(np.array([50, 3]), covs, mode="adaptive", sigma=2.0, scale=0.5)
    np.testing.assert_allclose(out[0], np.diag([0.25, 4.0]))  # scaled by 0.5**2, floor 0.25
    np.testing.assert_allclose(out[1], np.diag([4.0, 4.0]))  # fewer than MIN_OBJECT_VOXELS: fixed sigma
    fixed = center_covariances(np.array([50, 3]), covs, mode="fixed", sigma=2.0, scale=0.5)
    np.testing.assert_allclose(fixed, np.stack([np.diag([4.0, 4.0])] * 2))


def test_render_gaussians_takes_the_maximum_and_is_anisotropic() -> None:
    cov = np.diag([1.0, 9.0])
    out = render_gaussians((9, 20), np.array([[4, 5], [4, 14]]), np.stack([cov, cov]))
    assert out[4, 5] == 1.0 and out[4, 14] == 1.0
    assert out[4, 8] == pytest.approx(np.exp(-0.5))  # 3 pixels along X = one sigma
    assert out[7, 5] == pytest.approx(np.exp(-4.5))  # 3 pixels along Y = three sigmas
    assert out[0, 5] == 0.0  # beyond the truncation box


def test_point_center_target_shapes_peaks_by_object_and_masks_unknown() -> None:
    grown = np.zeros((20, 40), np.int32)
    grown[5:10, 2:8] = 1  # small object of click 0
    grown[3:17, 15:35] = 2  # large object of click 1
    grown[0, :] = -1  # an unknown row
    target = point_center_target(np.array([[7, 5], [10, 25]]), grown, mode="adaptive", scale=1.0)
    assert target.shape == (2, 20, 40) and target.dtype == np.float32
    t, known = target
    assert t[7, 5] == 1.0 and t[10, 25] == 1.0
    # 4 pixels from each click: the larger object's Gaussian is wider
    assert t[10, 29] > 0.5 > t[7, 9]
    assert not known[0].any() and known[1:].all()
    fixed = point_center_target(np.array([[7, 5], [10, 25]]), grown, mode="fixed", sigma=2.0)[0]
    assert fixed[10, 27] == pytest.approx(fixed[7, 7])  # one sigma for every object


def test_mask_center_target_peaks_at_centroids_and_knows_every_pixel() -> None:
    inst = np.zeros((12, 12), np.uint16)
    inst[1:6, 1:6] = 7
    inst[6:11, 6:11] = 3
    t, known = mask_center_target(inst, mode="adaptive")
    assert t[3, 3] == 1.0 and t[8, 8] == 1.0
    assert t[5, 5] < 0.5 and known.all()
    assert mask_center_target(np.zeros((4, 4), np.uint8))[0].max() == 0.0
