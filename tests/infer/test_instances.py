from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
from scipy import ndimage as ndi

from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.infer.instances import InstanceConfig, instances_from_maps, label_instances
from pointseg_cli.infer.objects import object_table, write_objects_csv
from pointseg_cli.infer.watershed import find_peaks, neighbourhood, peak_radii
from pointseg_cli.infer.watershed_reference import reference_instances
from pointseg_cli.metrics import match_instances


def spheres(shape, n, *, seed=0, radius=(4.0, 7.0), classes=1, scale=(1.0, 1.0, 1.0)):
    """Touching/overlapping balls: class map, centre map (a Gaussian per ball) and true ids."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) * sc for s, sc in zip(shape, scale, strict=False)], indexing="ij"))
    cls = np.zeros(shape, np.uint8)
    cen = np.zeros(shape, np.float32)
    gt = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf)
    ext = np.array(shape) * np.array(scale[: len(shape)])
    for k in range(n):
        r = rng.uniform(*radius)
        c = rng.uniform(np.minimum(r, ext / 2), np.maximum(ext - r, ext / 2))
        d = np.sqrt(((grid - c.reshape((-1,) + (1,) * len(shape))) ** 2).sum(0)) / r
        inside = d < 1
        cls[inside] = 1 + k % classes
        closer = inside & (d < best)
        gt[closer], best[closer] = k + 1, d[closer]
        cen = np.maximum(cen, np.exp(-2 * d**2)).astype(np.float32)
    return cls, cen, gt


def same_partition(a, b):
    """True when ``a`` and ``b`` are equal up to relabelling (a one-to-one map of non-zero ids)."""
    if not np.array_equal(a > 0, b > 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(set(pairs[0])) == len(set(pairs[1])) == pairs.shape[1]


@pytest.fixture(scope="module")
def volume():
    return spheres((30, 40, 40), 18, seed=3, classes=2)


@pytest.mark.parametrize("method", ["components", "distance", "centers"])
@pytest.mark.parametrize("max_voxels, slab", [(40 * 40 * 18, 2), (40 * 40 * 18, 5), (40 * 40 * 24, 3), (10**9, 7)])
def test_streamed_equals_whole_volume(volume, method, max_voxels, slab):
    cls, cen, _ = volume
    whole = label_instances(cls, cen, config=InstanceConfig(method=method))
    out = np.zeros(cls.shape, np.uint32)
    res = instances_from_maps(cls, cen, out, config=InstanceConfig(method=method, max_voxels=max_voxels), slab=slab)
    assert res.approximate == ()
    assert same_partition(out, whole)
    np.testing.assert_array_equal(out, whole)  # ids follow the first voxel, so even the numbers agree
    assert res.n_instances == whole.max() and whole.max() > 5


def _specks(cls, seed):
    """Add single voxels and voxel pairs (the components that skip segmentation) to a class map."""
    rng = np.random.default_rng(seed)
    cls = cls.copy()
    for _ in range(12):
        p = tuple(int(rng.integers(0, s - 1)) for s in cls.shape)
        cls[p] = 1 + rng.integers(0, 2)
        if rng.random() < 0.5:
            q = list(p)
            q[-1] += 1
            cls[tuple(q)] = cls[p]
    return cls


@pytest.mark.parametrize("method", ["components", "distance", "centers"])
@pytest.mark.parametrize("settings", [
    {},
    {"spacing": (1.5, 0.5, 0.5)},
    {"connectivity": 3, "min_distance": 2.0},
    {"min_distance": 0.0, "threshold": 0.5},
])
def test_fast_path_equals_the_whole_array_reference(volume, method, settings):
    """The per-component crops (in memory and streamed, with components taller than the buffer
    and components segmented in the sweep) give the plain whole-array result exactly."""
    cls, cen, _ = volume
    cls = _specks(cls, 7)
    cen = np.round(cen, 1)  # plateaus: equal peak values and ties in the flooding order
    cen[0, :3, :3] = np.nan
    cfg = InstanceConfig(method=method, **settings)
    ref = reference_instances(cls, cen, config=cfg)
    np.testing.assert_array_equal(label_instances(cls, cen, config=cfg), ref)
    for max_voxels, slab in ((40 * 40 * 24, 2), (40 * 40 * 40, 5)):
        out = np.full(cls.shape, 7, np.uint32)  # every voxel is overwritten
        res = instances_from_maps(cls, cen, out, config=InstanceConfig(method=method, max_voxels=max_voxels,
                                                                       **settings), slab=slab)
        assert res.approximate == ()
        np.testing.assert_array_equal(out, ref)
        assert res.n_instances == ref.max() and len(res.table) == ref.max()


def test_fast_path_equals_the_reference_in_2d():
    cls, cen, _ = spheres((60, 70), 14, seed=6, radius=(4, 9), classes=2)
    cls = _specks(cls, 3)
    for method in ("distance", "centers"):
        cfg = InstanceConfig(method=method, spacing=(1.0, 0.7))
        np.testing.assert_array_equal(label_instances(cls, cen, config=cfg), reference_instances(cls, cen, config=cfg))


def test_objects_cross_slab_faces(volume):
    cls, _, _ = volume
    whole = label_instances(cls, config=InstanceConfig(method="components"))
    spans = [np.unique(np.nonzero(whole == i)[0]) for i in range(1, whole.max() + 1)]
    assert any(s.min() < 10 <= s.max() for s in spans)  # an object crosses the face at z=10 (slab 2 and 5)


def test_streamed_from_disk_arrays(volume, tmp_path):
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")
    cls, cen, _ = volume
    cfg = InstanceConfig(method="centers", spacing=(1.5, 0.5, 0.5), max_voxels=40 * 40 * 18)
    whole = label_instances(cls, cen, config=cfg)
    tifffile.imwrite(tmp_path / "c.tif", cls)
    cls_mm = tifffile.memmap(tmp_path / "c.tif")
    cen_z = zarr.create_array(str(tmp_path / "cen.zarr"), shape=cen.shape, dtype=cen.dtype, chunks=(4, 40, 40))
    cen_z[...] = cen
    out = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", dtype=np.uint32, shape=cls.shape)
    instances_from_maps(cls_mm, cen_z, out, config=cfg, slab=4)
    np.testing.assert_array_equal(np.asarray(out), whole)


def test_two_dimensional():
    cls, cen, gt = spheres((60, 70), 12, seed=5, radius=(5, 9))
    for method in ("components", "distance", "centers"):
        whole = label_instances(cls, cen, config=InstanceConfig(method=method))
        out = np.zeros(cls.shape, np.uint32)
        instances_from_maps(cls, cen, out, config=InstanceConfig(method=method, max_voxels=70 * 40), slab=4)
        np.testing.assert_array_equal(out, whole)
    assert match_instances(whole, gt).f1 > match_instances(label_instances(cls, config=InstanceConfig(
        method="components")), gt).f1


def test_centers_split_touching_objects():
    cls, cen, gt = spheres((24, 40, 60), 0)
    zz, yy, xx = np.mgrid[:24, :40, :60]
    for k, x0 in enumerate((22, 36)):  # two balls of radius 8, 14 apart: they overlap
        d = np.sqrt((zz - 12) ** 2 + (yy - 20) ** 2 + (xx - x0) ** 2) / 8
        cls[d < 1] = 1
        cen = np.maximum(cen, np.exp(-2 * d**2))
        gt[(d < 1) & (np.abs(xx - x0) <= np.abs(xx - (58 - x0)))] = k + 1
    comps = label_instances(cls, config=InstanceConfig(method="components"))
    ours = label_instances(cls, cen, config=InstanceConfig(method="centers"))
    assert comps.max() == 1 and ours.max() == 2
    assert match_instances(ours, gt, threshold=0.9).tp == 2


def test_centers_match_plain_watershed(volume):
    """Independent check: scikit-image's watershed on the raw values, with our markers, per class."""
    from skimage.segmentation import watershed

    cls, cen, _ = volume
    cen = cen + np.random.default_rng(0).uniform(0, 1e-4, cen.shape)  # no ties: the flooding order is unique
    cfg = InstanceConfig(method="centers")
    ours = label_instances(cls, cen, config=cfg)
    ref = np.zeros(cls.shape, np.int64)
    structure = neighbourhood(3, 1)
    for c in (1, 2):
        comp, _ = ndi.label(cls == c, structure)
        markers, _ = ndi.label(find_peaks(cen, comp, radii=peak_radii(cfg, 3), threshold=0.3), structure)
        ws = watershed(-cen.astype(np.float32).astype(np.float64), markers, mask=cls == c)
        ref[ws > 0] = ws[ws > 0] + ref.max()
        lost = (cls == c) & (ws == 0)  # a component without a marker is one object
        ref[lost] = comp[lost] + ref.max()
    assert same_partition(ours, ref)


def test_components_match_scipy_label(volume):
    cls, _, _ = volume
    ours = label_instances(cls, config=InstanceConfig(method="components", connectivity=3))
    ref = np.zeros(cls.shape, np.int64)
    for c in (1, 2):
        lab, n = ndi.label(cls == c, np.ones((3, 3, 3)))
        ref[lab > 0] = lab[lab > 0] + ref.max()
    assert same_partition(ours, ref)


def test_multi_class_objects_never_mix(volume):
    cls, cen, _ = volume
    for method in ("distance", "centers"):
        ids = label_instances(cls, cen, config=InstanceConfig(method=method))
        assert np.array_equal(ids > 0, cls > 0)
        pairs = np.unique(np.stack([ids[ids > 0], cls[ids > 0]]), axis=1)
        assert pairs.shape[1] == ids.max()  # one class per instance


def test_spacing_sets_peak_box_and_distance():
    assert peak_radii(InstanceConfig(spacing=(2.0, 0.5, 0.5), min_distance=3), 3) == (0, 3, 3)
    assert peak_radii(InstanceConfig(min_distance=2.5), 2) == (2, 2)
    # an anisotropic ellipsoid (flat in voxels, round in space) is one object with spacing
    cls, _, gt = spheres((20, 60, 60), 1, seed=1, radius=(12, 12), scale=(3.0, 1.0, 1.0))
    ids = label_instances(cls, config=InstanceConfig(method="distance", spacing=(3.0, 1.0, 1.0)))
    assert ids.max() == 1


def test_centers_without_centre_map_names_working_methods():
    with pytest.raises(ConfigError, match="needs a centre map; without one use distance, components, none"):
        label_instances(np.zeros((5, 5), np.uint8), config=InstanceConfig(method="centers"))
    with pytest.raises(ConfigError, match="instance method must be one of centers, distance"):
        InstanceConfig(method="blobs")
    with pytest.raises(InputError, match=r"centre map has shape \(4, 5\) but the class map has \(5, 5\)"):
        label_instances(np.zeros((5, 5), np.uint8), np.zeros((4, 5)))
    with pytest.raises(InputError, match="output array has shape"):
        instances_from_maps(np.zeros((5, 5), np.uint8), None, np.zeros((5, 6), np.uint32),
                            config=InstanceConfig(method="components"))


def test_none_and_empty():
    cls = np.zeros((6, 7, 8), np.uint8)
    out = np.ones(cls.shape, np.uint32)
    res = instances_from_maps(cls, None, out, config=InstanceConfig(method="distance"))
    assert res.n_instances == 0 and not out.any() and len(res.table) == 0
    res = instances_from_maps(cls, None, out, config=InstanceConfig(method="none"))
    assert res.method == "none" and res.n_instances == 0


def test_marker_less_component_is_one_instance():
    cls = np.zeros((1, 10, 30), np.uint8)
    cls[0, 2:8, 2:12] = 1
    cls[0, 2:8, 16:28] = 1
    cen = np.zeros(cls.shape, np.float32)
    cen[0, 5, 6] = 0.9  # only the first object has a centre above the threshold
    ids = label_instances(cls, cen, config=InstanceConfig(method="centers"))
    assert ids.max() == 2 and len(np.unique(ids[0, 2:8, 16:28])) == 1


def test_too_large_component_is_approximated_with_warning(caplog):
    cls, cen, _ = spheres((40, 32, 32), 25, seed=2, radius=(5, 8))
    cfg = InstanceConfig(method="centers", max_voxels=32 * 32 * 12)
    whole = label_instances(cls, cen, config=cfg)
    out = np.zeros(cls.shape, np.uint32)
    with caplog.at_level(logging.WARNING):
        res = instances_from_maps(cls, cen, out, config=cfg)
    assert res.approximate and "may differ from a whole-volume run" in caplog.text
    assert np.array_equal(out > 0, cls > 0)
    assert match_instances(out, whole).f1 >= 0.8


def test_object_table_matches_numpy(tmp_path):
    cls, cen, _ = spheres((16, 30, 30), 8, seed=4, classes=2)
    rng = np.random.default_rng(1)
    image = rng.normal(100, 10, cls.shape + (2,))
    spacing = (2.0, 0.25, 0.25)
    out = np.zeros(cls.shape, np.uint32)
    res = instances_from_maps(cls, cen, out, config=InstanceConfig(method="centers", spacing=spacing,
                                                                 max_voxels=30 * 30 * 5), image=image, slab=3)
    t = res.table
    assert len(t) == out.max()
    for i in range(1, out.max() + 1):
        where = np.argwhere(out == i)
        row = i - 1
        assert t.ids[row] == i and t.voxels[row] == len(where)
        np.testing.assert_allclose(t.centroid[row], where.mean(0))
        np.testing.assert_allclose(t.centroid_physical[row], where.mean(0) * spacing)
        np.testing.assert_array_equal(t.lo[row], where.min(0))
        np.testing.assert_array_equal(t.hi[row], where.max(0) + 1)
        np.testing.assert_allclose(t.mean_intensity[row], image[out == i].mean(0))
        assert t.classes[row] == cls[tuple(where[0])]
    mem = object_table(out, class_map=cls, image=image, spacing=spacing)
    np.testing.assert_allclose(mem.centroid, t.centroid)
    np.testing.assert_array_equal(mem.classes, t.classes)
    path = write_objects_csv(tmp_path / "x.objects.csv", t, class_names=["nucleus", "granule"])
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["id", "class", "z", "y", "x", "z_um", "y_um", "x_um", "voxels", "z_min", "y_min",
                             "x_min", "z_max", "y_max", "x_max", "mean_intensity_c0", "mean_intensity_c1"]
    assert len(rows) == len(t) and rows[0]["class"] in ("nucleus", "granule")
    assert float(rows[0]["z_um"]) == pytest.approx(t.centroid[0, 0] * 2.0, rel=1e-5)
    assert int(rows[0]["z_max"]) == t.hi[0, 0] - 1
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_object_csv_2d_without_spacing_or_image(tmp_path):
    ids = np.zeros((5, 6), np.uint32)
    ids[1:3, 1:4] = 1
    path = write_objects_csv(tmp_path / "o.csv", object_table(ids, class_map=(ids > 0).astype(np.uint8)))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["id", "class", "y", "x", "y_um", "x_um", "voxels", "y_min", "x_min", "y_max", "x_max",
                       "mean_intensity"]
    assert rows[1] == ["1", "1", "1.5", "2", "", "", "6", "1", "1", "2", "3", ""]


@pytest.mark.parametrize("together", [True, False])
@pytest.mark.parametrize("method", ["distance", "centers"])
def test_small_components_together_or_alone_equal_the_reference(volume, monkeypatch, method, together):
    import pointseg_cli.infer.sweep as sweep

    if together:  # every component is small, and one pass over their shared box always wins
        monkeypatch.setattr(sweep, "BATCH_MIN", 1)
        monkeypatch.setattr(sweep, "SMALL_BOX", 10**9)
        monkeypatch.setattr(sweep, "OVERHEAD_VOXELS", 10**9)
    else:
        monkeypatch.setattr(sweep, "BATCH_MIN", 10**9)
    cls, cen, _ = volume
    cls = _specks(cls, 11)
    cen = np.round(cen, 1)
    cfg = InstanceConfig(method=method, spacing=(1.5, 0.5, 0.5))
    ref = reference_instances(cls, cen, config=cfg)
    np.testing.assert_array_equal(label_instances(cls, cen, config=cfg), ref)
    out = np.zeros(cls.shape, np.uint32)
    instances_from_maps(cls, cen, out, config=InstanceConfig(method=method, spacing=(1.5, 0.5, 0.5),
                                                             max_voxels=40 * 40 * 24), slab=3)
    np.testing.assert_array_equal(out, ref)


def test_chunked_component_lets_the_output_map_drop_its_pages(tmp_path, monkeypatch):
    """A component too large for one window is written chunk by chunk; each chunk releases the
    output's mapped pages, so resident memory does not grow with the volume."""
    import pointseg_cli.infer.bigcomp as bigcomp
    import pointseg_cli.infer.sweep as sweep

    inside, released = [False], []
    chunked = bigcomp.segment_in_chunks

    def watched(*args, **kwargs):
        inside[0] = True
        chunked(*args, **kwargs)
        inside[0] = False

    monkeypatch.setattr(bigcomp, "segment_in_chunks", watched)
    monkeypatch.setattr(sweep, "release_pages", lambda arr: released.append((inside[0], arr)))
    cls, cen, _ = spheres((40, 32, 32), 25, seed=2, radius=(5, 8))
    out = np.lib.format.open_memmap(tmp_path / "ids.npy", mode="w+", dtype=np.uint32, shape=cls.shape)
    res = instances_from_maps(cls, cen, out, config=InstanceConfig(method="centers", max_voxels=32 * 32 * 12))
    assert res.approximate
    assert sum(during and a is out for during, a in released) >= 2 * 3  # two passes over several chunks


@pytest.mark.parametrize("connectivity", [1, 2, 3])
def test_sparse_marker_labelling_equals_scipy_label(connectivity):
    from pointseg_cli.infer.bigcomp import _label_sparse

    mask = np.random.default_rng(connectivity).random((12, 20, 20)) < 0.3
    structure = neighbourhood(3, connectivity)
    ref, n = ndi.label(mask, structure)
    lab, k = _label_sparse(np.argwhere(mask), mask.shape, structure)
    assert k == n and same_partition(ref[mask], lab)
