"""Kernel vs pure-Python reference, validation errors and result semantics of compute_objectness."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointseg_cli.errors import ConfigError, ImageFormatError, PointsError
from pointseg_cli.objectness import buckets, compute_objectness, grow
from pointseg_cli.objectness.grow import neighbour_offsets, seed_reference, step_weights
from pointseg_cli.objectness.reference import boundary_reference, grow_reference


@st.composite
def grow_cases(draw: st.DrawFn) -> dict:
    ndim = draw(st.sampled_from([2, 3]))
    shape = tuple(draw(st.integers(2, 7 if ndim == 2 else 4)) for _ in range(ndim))
    channels = draw(st.sampled_from([1, 3]))
    # few distinct levels so that equal distances (FIFO ties) are common
    levels = draw(st.sampled_from([3, 1000]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    image = rng.integers(0, levels, size=shape + ((channels,) if channels > 1 else ())) / levels
    n_vox = int(np.prod(shape))
    n_seeds = draw(st.integers(1, min(5, n_vox)))
    flat = rng.choice(n_vox, size=n_seeds, replace=False)
    seeds = np.stack(np.unravel_index(flat, shape), axis=1)
    return {
        "image": image,
        "seeds": seeds,
        "channel_axis": -1 if channels > 1 else None,
        "connectivity": draw(st.integers(1, ndim)),
        "mode": draw(st.sampled_from(["paper", "geodesic"])),
        "cost": draw(st.sampled_from(["seed", "parent"])),
        "spacing": draw(st.sampled_from([None, tuple(float(s) for s in rng.uniform(0.3, 3.0, ndim))])),
    }


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(grow_cases())
def test_kernel_matches_reference(case: dict) -> None:
    kw = {k: case[k] for k in ("channel_axis", "connectivity", "mode", "spacing", "cost")}
    res = compute_objectness(case["image"], case["seeds"], np.ones(len(case["seeds"]), int), w=3.0, **kw)
    regions, dist = grow_reference(case["image"], case["seeds"], **kw)
    np.testing.assert_array_equal(res.regions, regions)
    np.testing.assert_allclose(res.distance, dist.astype(np.float32), rtol=1e-6, atol=0)
    np.testing.assert_array_equal(res.background, boundary_reference(regions, connectivity=kw["connectivity"]))
    np.testing.assert_allclose(res.objectness, np.exp(-3.0 * dist), rtol=1e-5, atol=1e-7)



@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(grow_cases(), st.sampled_from([1, 2, 8]), st.sampled_from([0.0, 0.5, 20.0, 1e4]))
def test_bucket_queue_is_exact_for_any_window(monkeypatch: pytest.MonkeyPatch, case: dict, n_buckets: int,
                                              inv_delta: float) -> None:
    # tiny windows and extreme widths force wrap-around, overflow entries and multi-entry buckets
    monkeypatch.setattr(grow, "_n_buckets", lambda n_vox: n_buckets)
    monkeypatch.setattr(grow, "_inverse_bucket_width", lambda *a, **k: inv_delta)
    kw = {k: case[k] for k in ("channel_axis", "connectivity", "mode", "spacing", "cost")}
    res = compute_objectness(case["image"], case["seeds"], np.ones(len(case["seeds"]), int), w=3.0, **kw)
    regions, dist = grow_reference(case["image"], case["seeds"], **kw)
    np.testing.assert_array_equal(res.regions, regions)
    np.testing.assert_allclose(res.distance, dist.astype(np.float32), rtol=1e-6, atol=0)


@pytest.mark.parametrize("mode", ["paper", "geodesic"])
def test_queue_storage_grows_from_its_initial_size(rng: np.random.Generator, mode: str) -> None:
    # a 96x96 image starts with a 16-chunk pool, a 256-entry run and 264-entry heaps: the growing
    # front (chunks), the one-bucket window (overflow), the single bucket (heap) and buckets larger
    # than the run each make the kernel ask for more space; it resumes exactly
    image = rng.random((96, 96))
    seeds = np.array([[0, 0], [95, 95], [0, 95]])
    want = grow_reference(image, seeds, mode=mode)
    for n_buckets, width in ((1, 50.0), (4096, 1e3), (2, 0.0), (1, 0.5)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(grow, "_n_buckets", lambda n_vox, nb=n_buckets: nb)
            mp.setattr(grow, "_inverse_bucket_width", lambda *a, w=width, **k: w)
            res = compute_objectness(image, seeds, [1, 1, 1], w=1.0, mode=mode)
        np.testing.assert_array_equal(res.regions, want[0])
        np.testing.assert_allclose(res.distance, want[1].astype(np.float32), rtol=1e-6)


def test_bucket_width_follows_the_step_costs() -> None:
    flat = compute_objectness(np.zeros((8, 8)), [[1, 1]], [1], w=1.0)
    assert (flat.distance == 0).all()  # free steps: one bucket, still FIFO
    assert grow._n_buckets(10) == buckets._MIN_BUCKETS and grow._n_buckets(10**12) == buckets._MAX_BUCKETS
    assert grow._n_buckets(5 * 10**6) & (grow._n_buckets(5 * 10**6) - 1) == 0  # a power of two

def test_two_flat_regions_split_at_the_edge() -> None:
    image = np.zeros((5, 8))
    image[:, 4:] = 1.0
    res = compute_objectness(image, [[2, 1], [2, 6]], [1, 2], w=1.0)
    assert (res.regions[:, :4] == 1).all() and (res.regions[:, 4:] == 2).all()
    assert (res.distance == 0).all()  # flat within each region, never crossed the edge
    assert res.background[:, 3:5].all() and not res.background[:, :3].any()
    soft = res.soft_labels(2)
    assert soft.shape == (3, 5, 8)
    np.testing.assert_allclose(soft.sum(0), 1.0)
    assert (soft[1][:, :4] == 1).all() and (soft[2][:, 4:] == 1).all() and (soft[0] == 0).all()


def test_crossing_an_edge_costs_squared_difference() -> None:
    image = np.array([[0.0, 0.0, 0.5, 0.5]])
    res = compute_objectness(image, [[0, 0]], [1], w=2.0, cost="parent")
    np.testing.assert_allclose(res.distance, [[0, 0, 0.25, 0.25]])
    np.testing.assert_allclose(res.objectness, np.exp(-2.0 * np.array([[0, 0, 0.25, 0.25]])), rtol=1e-6)


def test_seed_cost_charges_every_pixel_its_difference_to_the_seed() -> None:
    # the parent cost pays the edge once; the seed cost pays 0.25 again on every pixel past it
    image = np.array([[0.0, 0.0, 0.0, 0.5, 0.5, 0.5]])
    res = compute_objectness(image, [[0, 1]], [1], w=2.0)  # default cost="seed"
    np.testing.assert_allclose(res.distance, [[0, 0, 0, 0.25, 0.5, 0.75]])
    parent = compute_objectness(image, [[0, 1]], [1], w=2.0, cost="parent")
    np.testing.assert_allclose(parent.distance, [[0, 0, 0, 0.25, 0.25, 0.25]])


def test_seed_reference_is_the_clipped_box_mean() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
    refs = seed_reference(image, np.array([[1, 1], [0, 3]]))
    np.testing.assert_allclose(refs[:, 0], [image[0:3, 0:3].mean(), image[0:2, 2:4].mean()])
    np.testing.assert_allclose(seed_reference(image, np.array([[0, 3]]), radius=0), [[3.0]])
    # a noisy seed pixel does not set the reference: one bright pixel in a flat region
    flat = np.zeros((5, 5))
    flat[2, 2] = 0.9
    res = compute_objectness(flat, [[2, 2]], [1], w=1.0)
    assert res.distance[0, 0] < 0.1 * compute_objectness(flat, [[2, 2]], [1], w=1.0, cost="parent").distance.max()


def test_seed_cost_sums_channels_and_applies_spacing() -> None:
    image = np.zeros((2, 3, 3, 2))
    image[1, ..., 0] = 0.5
    image[1, ..., 1] = 1.0
    iso = compute_objectness(image, [[0, 1, 1]], [1], w=1.0, channel_axis=-1)
    aniso = compute_objectness(image, [[0, 1, 1]], [1], w=1.0, channel_axis=-1, spacing=(4.0, 1.0, 1.0))
    # reference = mean of the 3x3x3 box clipped to 2 planes: (0.25, 0.5); plane 1 differs by (0.25, 0.5)
    step = 0.25**2 + 0.5**2
    assert iso.distance[1, 1, 1] == pytest.approx(step)
    assert aniso.distance[1, 1, 1] == pytest.approx(4.0 * step)
    # plane 0 differs from the reference too: every in-plane step costs the same again
    assert iso.distance[0, 1, 2] == pytest.approx(step)
    assert iso.distance[0, 0, 0] == pytest.approx(2 * step)


def test_paper_mode_keeps_first_label_geodesic_relabels() -> None:
    # seed 1 labels pixel 1 first through an expensive step; seed 2 has a free path to it later
    image = np.array([[0.0, 1.0, 1.0, 1.0]])
    paper = compute_objectness(image, [[0, 0], [0, 3]], [1, 1], w=1.0, mode="paper", cost="parent")
    geo = compute_objectness(image, [[0, 0], [0, 3]], [1, 1], w=1.0, mode="geodesic", cost="parent")
    assert paper.regions.tolist() == [[1, 1, 2, 2]]
    np.testing.assert_allclose(paper.distance, [[0, 1, 0, 0]])
    assert geo.regions.tolist() == [[1, 2, 2, 2]]
    np.testing.assert_allclose(geo.distance, [[0, 0, 0, 0]])


def test_geodesic_finds_a_cheaper_detour() -> None:
    image = np.array([[0.0, 1.0], [0.5, 1.0]])
    paper = compute_objectness(image, [[0, 0]], [1], w=1.0, mode="paper", cost="parent")
    geo = compute_objectness(image, [[0, 0]], [1], w=1.0, mode="geodesic", cost="parent")
    assert paper.distance[0, 1] == pytest.approx(1.0)
    assert geo.distance[0, 1] == pytest.approx(0.5)


def test_fifo_ties_and_neighbour_order() -> None:
    # on a flat image two seeds tie everywhere; FIFO makes them grow breadth-first in lock step
    res = compute_objectness(np.zeros((1, 5)), [[0, 0], [0, 4]], [1, 1], w=1.0)
    assert res.regions.tolist() == [[1, 1, 1, 2, 2]]  # seed 1 pushed first, claims the middle


def test_spacing_scales_the_cost_of_coarse_axes() -> None:
    image = np.zeros((2, 3, 3))
    image[1] = 1.0
    iso = compute_objectness(image, [[0, 1, 1]], [1], w=1.0, cost="parent")
    aniso = compute_objectness(image, [[0, 1, 1]], [1], w=1.0, spacing=(4.0, 1.0, 1.0), cost="parent")
    np.testing.assert_allclose(iso.distance[1], 1.0)
    np.testing.assert_allclose(aniso.distance[1], 4.0)
    same = compute_objectness(image, [[0, 1, 1]], [1], w=1.0, spacing=(2.0, 2.0, 2.0), cost="parent")
    np.testing.assert_array_equal(same.distance, iso.distance)


def test_neighbour_offsets_order_and_counts() -> None:
    assert neighbour_offsets(2, 1) == [(-1, 0), (1, 0), (0, -1), (0, 1)]
    assert len(neighbour_offsets(2, 2)) == 8
    assert len(neighbour_offsets(3, 2)) == 18
    assert len(neighbour_offsets(3, 3)) == 26
    np.testing.assert_allclose(step_weights([(1, 0), (0, 1), (1, 1)], (3.0, 1.5)), [2.0, 1.0, 2.0])


def test_no_seeds_leaves_everything_unreached() -> None:
    res = compute_objectness(np.zeros((3, 3)), np.zeros((0, 2), int), np.zeros(0, int), w=1.0)
    assert (res.regions == 0).all() and np.isinf(res.distance).all() and (res.objectness == 0).all()
    np.testing.assert_array_equal(res.soft_labels(1)[0], 1.0)


def test_class_channels_of_soft_labels() -> None:
    res = compute_objectness(np.zeros((4, 4)), [[0, 0], [3, 3]], [2, 1], w=1.0, connectivity=2)
    soft = res.soft_labels(3)
    cmap = res.class_map()
    assert set(np.unique(cmap)) == {1, 2}
    assert (soft[3] == 0).all()
    np.testing.assert_array_equal(soft[2] > 0, cmap == 2)
    with pytest.raises(ConfigError, match="n_classes must be >= 2"):
        res.soft_labels(1)


@pytest.mark.parametrize(
    ("image", "seeds", "classes", "kwargs", "error", "match"),
    [
        (np.zeros((4, 4)), [[0, 4]], [1], {}, PointsError, "outside the image of shape"),
        (np.zeros((4, 4)), [[1, 1], [1, 1]], [1, 1], {}, PointsError, "one seed per pixel"),
        (np.zeros((4, 4)), [[1, 1, 1]], [1], {}, PointsError, r"shape \(N, 2\)"),
        (np.zeros((4, 4)), [[1, 1]], [0], {}, PointsError, "ids >= 1"),
        (np.zeros((4, 4)), [[1, 1]], [1, 2], {}, PointsError, "one class id per seed"),
        (np.full((4, 4), np.nan), [[1, 1]], [1], {}, ImageFormatError, "NaN"),
        (np.zeros(4), [[1]], [1], {}, ImageFormatError, "2-D or 3-D"),
        (np.zeros((4, 4)), [[1, 1]], [1], {"mode": "fast"}, ConfigError, "paper, geodesic"),
        (np.zeros((4, 4)), [[1, 1]], [1], {"cost": "seeds"}, ConfigError, "seed, parent"),
        (np.zeros((4, 4)), [[1, 1]], [1], {"connectivity": 3}, ConfigError, "between 1 and 2"),
        (np.zeros((4, 4)), [[1, 1]], [1], {"w": -1.0}, ConfigError, "positive"),
        (np.zeros((4, 4)), [[1, 1]], [1], {"spacing": (1.0,)}, ConfigError, "spacing must be 2"),
    ],
)
def test_invalid_inputs(image, seeds, classes, kwargs, error, match) -> None:  # noqa: ANN001
    kwargs = {"w": 1.0} | kwargs
    with pytest.raises(error, match=match):
        compute_objectness(image, np.array(seeds), np.array(classes), **kwargs)


def test_channel_axis_first_equals_last(rng: np.random.Generator) -> None:
    img = rng.random((6, 7, 3))
    a = compute_objectness(img, [[1, 1], [4, 5]], [1, 1], w=1.0, channel_axis=-1)
    b = compute_objectness(np.moveaxis(img, -1, 0), [[1, 1], [4, 5]], [1, 1], w=1.0, channel_axis=0)
    np.testing.assert_array_equal(a.regions, b.regions)
    np.testing.assert_array_equal(a.distance, b.distance)
