"""The compiled distance transform and flooding against scipy and scikit-image (the oracles)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from pointseg_cli.infer.watershed import flood_order, mask_distance, neighbourhood, seeded_flood


def _blobs(shape, seed):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape), 1.5) > 0.5


@pytest.mark.parametrize("shape, spacing", [((9, 30, 28), None), ((9, 30, 28), (2.0, 0.5, 0.5)),
                                            ((40, 35), (1.0, 0.75)), ((5, 1, 40), (1.5, 1.0, 0.25))])
def test_distance_equals_scipy(shape, spacing):
    mask = _blobs(shape, 1)
    want = np.round(ndi.distance_transform_edt(mask, sampling=spacing), 9)
    np.testing.assert_array_equal(mask_distance(mask, spacing), want)


def test_distance_without_any_outside_voxel_is_infinite():
    assert np.isinf(mask_distance(np.ones((3, 4), bool), None)).all()
    assert not mask_distance(np.zeros((3, 4), bool), None).any()


@pytest.mark.parametrize("connectivity", [1, 2, 3])
@pytest.mark.parametrize("ties", [False, True])
def test_flood_equals_scikit_image(connectivity, ties):
    from skimage.segmentation import watershed

    rng = np.random.default_rng(connectivity)
    mask = _blobs((12, 30, 30), 2)
    values = ndi.gaussian_filter(rng.random(mask.shape), 2)
    if ties:
        values = np.round(values, 2)  # plateaus: the raster order breaks the ties
    markers = np.zeros(mask.shape, np.int32)
    picks = rng.choice(np.flatnonzero(mask), 25, replace=False)
    markers.ravel()[picks] = np.arange(1, 26)
    structure = neighbourhood(3, connectivity)
    want = watershed(flood_order(values, mask), markers, mask=mask, connectivity=structure)
    got = seeded_flood(values, markers, mask, structure)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.int32 and (got[mask] > 0).any() and not got[~mask].any()


def test_peaks_of_one_component_mask_equal_those_of_its_numbers():
    from pointseg_cli.infer.watershed import find_peaks

    mask = _blobs((10, 30, 30), 4)
    lab, _ = ndi.label(mask)
    one = lab == np.argmax(np.bincount(lab.ravel())[1:]) + 1
    values = np.round(ndi.gaussian_filter(np.random.default_rng(0).random(mask.shape), 2), 3)
    got = find_peaks(values, one, radii=(1, 3, 3), threshold=0.0)
    np.testing.assert_array_equal(got, find_peaks(values, one.astype(np.int64) * 5, radii=(1, 3, 3), threshold=0.0))
    assert got.any()
