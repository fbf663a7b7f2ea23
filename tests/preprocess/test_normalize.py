from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.io.images import open_image, write_tiff
from pointseg_cli.preprocess.normalize import (
    Normalization,
    apply_normalization,
    compute_stats,
    normalize_image,
)


def test_percentile_maps_low_high_to_unit_range():
    x = np.arange(1000, dtype=np.float64).reshape(10, 100)
    out = normalize_image(x, Normalization(low=10, high=90))
    lo, hi = np.percentile(x, [10, 90])
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[5, 50], (x[5, 50] - lo) / (hi - lo), rtol=1e-6)
    assert out.min() == 0.0 and out.max() == 1.0


def test_per_channel_statistics_are_independent():
    rng = np.random.default_rng(1)
    x = np.stack([rng.uniform(0, 10, (30, 30)), rng.uniform(100, 1000, (30, 30))], axis=-1)
    out = normalize_image(x, Normalization(low=0, high=100), channel_axis=-1)
    for c in range(2):
        assert out[..., c].min() == pytest.approx(0.0) and out[..., c].max() == pytest.approx(1.0)


def test_joint_statistics_when_not_per_channel():
    x = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)], axis=0)
    stats = compute_stats(x, Normalization(low=0, high=100, per_channel=False), channel_axis=0)
    np.testing.assert_allclose(stats.lo, [1, 1])
    np.testing.assert_allclose(stats.hi, [3, 3])


def test_fixed_and_none_methods():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_allclose(normalize_image(x, Normalization("fixed", 0, 255)), [[0, 0.2, 1.0]], rtol=1e-6)
    out = normalize_image(x, Normalization("none", clip=False))
    np.testing.assert_array_equal(out, x.astype(np.float32))


def test_constant_image_maps_to_zero():
    assert not normalize_image(np.full((5, 5), 7.0)).any()


def test_no_clip_keeps_outliers():
    x = np.concatenate([np.linspace(0, 1, 99), [100.0]])
    stats = compute_stats(x, Normalization(low=0, high=50))
    assert apply_normalization(x, stats, clip=False).max() > 1.0


def test_round_trip_through_dict():
    norm = Normalization("percentile", 2.0, 98.0, per_channel=False, clip=False)
    assert Normalization.from_dict({**norm.to_dict(), "stain": {"target": "x"}}) == norm
    assert Normalization.from_dict(None) == Normalization()


@pytest.mark.parametrize(
    "kwargs",
    [dict(method="zscore"), dict(low=50, high=10), dict(low=-1, high=50), dict(method="fixed", low=5, high=5)],
)
def test_invalid_settings_are_rejected(kwargs):
    with pytest.raises(ConfigError):
        Normalization(**kwargs)


def test_lazy_image_statistics_match_in_memory_subsample(tmp_path):
    rng = np.random.default_rng(3)
    vol = rng.integers(0, 4000, size=(40, 256, 256), dtype=np.uint16)
    write_tiff(tmp_path / "v.tif", vol, axes="ZYX")
    lazy = open_image(tmp_path / "v.tif")
    stats = compute_stats(lazy, Normalization(low=1, high=99))
    sub = lazy.subsample()
    assert sub.size <= (1 << 22)
    exact = np.percentile(vol, [1, 99])
    # a strided subsample of i.i.d. data estimates the percentiles closely
    np.testing.assert_allclose([stats.lo[0], stats.hi[0]], exact, rtol=0.02)


def test_equalize_is_saved_and_applied_after_scaling_with_the_whole_image_map(tmp_path):
    from pointseg_cli.preprocess.equalize import equalize

    rng = np.random.default_rng(3)
    x = rng.gamma(1.5, 300.0, size=(8, 40, 40)).astype(np.uint16)
    norm = Normalization(equalize=True)
    assert Normalization.from_dict(norm.to_dict()) == norm and norm.to_dict()["equalize"] is True
    assert Normalization.from_dict({"method": "percentile"}).equalize is False  # older models
    whole = normalize_image(x, norm)
    np.testing.assert_allclose(whole, equalize(normalize_image(x, Normalization())), atol=1e-6)
    # statistics of the whole (lazy) image applied slab by slab, as segment does
    write_tiff(tmp_path / "v.tif", x, axes="ZYX")
    stats = compute_stats(open_image(tmp_path / "v.tif"), norm)
    assert stats.equalization is not None
    slabs = np.concatenate([apply_normalization(x[i : i + 3], stats) for i in range(0, 8, 3)])
    np.testing.assert_allclose(slabs, whole, atol=1e-6)
    with pytest.raises(ConfigError, match="equalize"):
        Normalization(equalize="yes")
