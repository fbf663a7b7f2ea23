from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile
from skimage.measure import regionprops

from pointseg_cli.demo import SIM_CLASSES, SIM_VOXEL_SIZE, generate_demo_data, make_sim_volume
from pointseg_cli.errors import ConfigError
from pointseg_cli.io.images import read_image, read_info
from pointseg_cli.io.points import read_points_csv

#: Test size: 5 x 10 x 10 µm, about one whole cell plus parts of its neighbours (the default
#: 40x384x384 holds several whole cells; see test_default_size_has_hundreds_of_granules_per_cell).
TEST_SHAPE = (40, 256, 256)
TINY = (16, 96, 96)


@pytest.fixture(scope="module")
def volume():
    return make_sim_volume(TEST_SHAPE, seed=1)


def test_shapes_dtypes_and_voxel_size(volume):
    assert volume.image.shape == TEST_SHAPE and volume.image.dtype == np.uint16
    assert volume.labels.dtype == np.uint16 and volume.classes.dtype == np.uint8
    assert volume.axes == "ZYX" and volume.class_names == SIM_CLASSES
    assert volume.voxel_size == SIM_VOXEL_SIZE and volume.voxel_size[0] / volume.voxel_size[1] > 3
    n = int(volume.labels.max())
    assert np.unique(volume.labels).tolist() == list(range(n + 1))  # consecutive ids
    np.testing.assert_array_equal(volume.classes > 0, volume.labels > 0)
    assert volume.cell_of.shape == (n + 1,) and volume.cell_of[0] == 0 and volume.cell_of[1:].min() >= 1


def test_every_class_present_and_one_class_per_granule(volume):
    lab, cls = volume.labels.ravel(), volume.classes.ravel()
    pairs = np.unique(np.stack([lab[lab > 0], cls[lab > 0]]), axis=1)
    assert pairs.shape[1] == volume.labels.max()  # each granule id has exactly one class
    counts = np.bincount(pairs[1], minlength=4)[1:]
    assert all(counts >= 10), counts


def test_hundreds_of_granules_in_the_largest_cell(volume):
    per_cell = np.bincount(volume.cell_of[1:])
    assert per_cell.max() >= 100, per_cell


def test_classes_differ_as_the_real_granules_do(volume):
    sx = volume.voxel_size
    img = volume.image.astype(float)
    props = {1: [], 2: [], 3: []}
    for rp in regionprops(volume.labels, intensity_image=img, spacing=sx):
        if rp.area < 0.02:  # µm³: skip granules cut to slivers by neighbours or the cell border
            continue
        cls = int(volume.classes[tuple(rp.coords[0])])
        ev = rp.inertia_tensor_eigvals
        elong = np.sqrt(ev[0] / max(ev[-1], 1e-9))
        props[cls].append((rp.area, elong, rp.intensity_mean))
    lf, mlf, mel = (np.array(props[c]) for c in (1, 2, 3))
    # size: melanolipofuscin > lipofuscin > melanosomes (by volume)
    assert np.median(mlf[:, 0]) > np.median(lf[:, 0]) > np.median(mel[:, 0])
    # shape: melanosomes elongated
    assert np.median(mel[:, 1]) > 1.5 * np.median(lf[:, 1])
    # brightness: lipofuscin brightest, melanosomes darker than the cytoplasm around them
    cyto = np.median(img[(volume.labels == 0)])
    assert np.median(lf[:, 2]) > np.median(mlf[:, 2]) > cyto > np.median(mel[:, 2])


def test_deterministic_by_seed():
    a, b = make_sim_volume(TINY, seed=5), make_sim_volume(TINY, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.cell_of, b.cell_of)
    c = make_sim_volume(TINY, seed=6)
    assert not np.array_equal(a.image, c.image)


def test_harder_is_noisier():
    def contrast(s):
        fg = s.image[s.classes == 1].astype(float)
        bg = s.image[s.labels == 0].astype(float)
        return (fg.mean() - bg.mean()) / bg.std()

    easy = make_sim_volume(TINY, seed=2, difficulty="easy")
    hard = make_sim_volume(TINY, seed=2, difficulty="hard")
    assert contrast(hard) < contrast(easy)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"shape": (64, 64)}, "Z, Y, X"), ({"voxel_size": (0.1, 0.0, 0.04)}, "positive"), ({"difficulty": "x"}, "easy")],
)
def test_rejects_bad_arguments(kwargs, message):
    kwargs = {"shape": TINY, **kwargs}
    with pytest.raises(ConfigError, match=message):
        make_sim_volume(**kwargs)


def _ome_sizes(path):
    with tifffile.TiffFile(path) as tf:
        pixels = ET.fromstring(tf.ome_metadata).find(".//{*}Pixels")
    return {k: pixels.get(k) for k in ("PhysicalSizeZ", "PhysicalSizeY", "PhysicalSizeX", "PhysicalSizeXUnit")}


def test_generate_writes_voxel_size_points_and_split_by_cell(tmp_path):
    ds = generate_demo_data(tmp_path, kind="3d-sim", n=3, size="16x96x96", seed=0)
    assert [p.name for p in ds.images] == ["sim_000.tif", "sim_001.tif", "sim_002.tif"]
    assert (tmp_path / "classes.txt").read_text().split() == list(SIM_CLASSES)
    for path in (*ds.images, *ds.labels, *ds.classes):
        assert _ome_sizes(path) == {"PhysicalSizeZ": "0.125", "PhysicalSizeY": "0.04", "PhysicalSizeX": "0.04",
                                    "PhysicalSizeXUnit": "µm"}
        info = read_info(path)  # pointseg's own reader sees the same voxel size
        assert info.axes == "ZYX" and info.shape == (16, 96, 96) and info.voxel_size == SIM_VOXEL_SIZE
    with tifffile.TiffFile(ds.images[0]) as tf:  # baseline TIFF tags too, in pixels per cm
        x_res = tf.pages[0].tags["XResolution"].value
        assert x_res[0] / x_res[1] == pytest.approx(1e4 / 0.04)

    # points: one click per granule, inside it, with the granule's class
    pts = read_points_csv(ds.points, classes=SIM_CLASSES)
    for stem, lab_path, cls_path in zip(("sim_000", "sim_001", "sim_002"), ds.labels, ds.classes, strict=True):
        labels, classes = read_image(lab_path), read_image(cls_path)
        mine = pts.for_image(stem)
        coords = mine.pixel_coords(3)
        hit = labels[tuple(coords.T)]
        assert len(mine) == labels.max() and sorted(hit.tolist()) == list(range(1, int(labels.max()) + 1))
        np.testing.assert_array_equal(classes[tuple(coords.T)], mine.class_ids())

    # split by cell: every cell in exactly one split, cells of a volume together; trainval has no test cells
    rows = list(csv.DictReader(ds.split.open()))
    assert len({r["cell"] for r in rows}) == len(rows)
    assert {r["image"]: r["split"] for r in rows} == {"sim_000": "train", "sim_001": "val", "sim_002": "test"}
    for r in rows:
        assert int(r["total"]) == sum(int(r[c]) for c in SIM_CLASSES)
    assert sum(int(r["total"]) for r in rows) == len(pts)
    trainval = read_points_csv(ds.points_trainval, classes=SIM_CLASSES)
    assert set(trainval.stems) <= {"sim_000", "sim_001"} and len(trainval) == len(pts) - len(pts.for_image("sim_002"))
    assert ds.splits == {"train": ("sim_000",), "val": ("sim_001",), "test": ("sim_002",)}


@pytest.mark.slow
def test_default_size_has_hundreds_of_granules_per_cell():
    s = make_sim_volume(seed=0)
    per_cell = np.bincount(s.cell_of[1:])[1:]
    assert (per_cell >= 150).sum() >= 3, per_cell
