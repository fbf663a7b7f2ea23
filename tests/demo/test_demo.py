from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import regionprops

from pointseg_cli.demo import (
    HE_CLASSES,
    generate_demo_data,
    make_he_tile,
    make_nuclei_volume,
    parse_size,
)
from pointseg_cli.errors import ConfigError
from pointseg_cli.io.images import read_image, read_info

SMALL_3D = (16, 64, 64)
SMALL_2D = (128, 128)


@pytest.fixture(scope="module")
def volume():
    return make_nuclei_volume(SMALL_3D, seed=3, difficulty="easy")


@pytest.fixture(scope="module")
def tiles():
    return [make_he_tile(SMALL_2D, seed=s, difficulty="easy") for s in range(4)]


def test_nuclei_volume_shapes_and_dtypes(volume):
    assert volume.image.shape == SMALL_3D and volume.image.dtype == np.uint16
    assert volume.labels.shape == SMALL_3D and volume.labels.dtype == np.uint16
    assert volume.axes == "ZYX" and volume.class_names == ("nucleus",)
    np.testing.assert_array_equal(volume.classes, (volume.labels > 0).astype(np.uint8))
    assert volume.labels.max() >= 3
    assert np.unique(volume.labels).tolist() == list(range(int(volume.labels.max()) + 1))  # consecutive ids


def test_nuclei_labels_sit_on_bright_voxels(volume):
    inside = volume.image[volume.labels > 0].astype(float)
    outside = volume.image[volume.labels == 0].astype(float)
    assert np.median(inside) > np.median(outside) + 5 * outside.std() / np.sqrt(2)
    # every nucleus is brighter than the background on average, not just the ensemble
    means = [volume.image[volume.labels == i].mean() for i in np.unique(volume.labels)[1:]]
    assert min(means) > np.percentile(outside, 75)


def test_nuclei_hard_is_noisier_than_easy():
    easy = make_nuclei_volume(SMALL_3D, seed=1, difficulty="easy")
    hard = make_nuclei_volume(SMALL_3D, seed=1, difficulty="hard")

    def contrast(s):
        fg, bg = s.image[s.labels > 0].astype(float), s.image[s.labels == 0].astype(float)
        return (fg.mean() - bg.mean()) / bg.std()

    assert contrast(hard) < contrast(easy)


def test_nuclei_deterministic_by_seed():
    a = make_nuclei_volume(SMALL_3D, seed=7)
    b = make_nuclei_volume(SMALL_3D, seed=7)
    c = make_nuclei_volume(SMALL_3D, seed=8)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_he_tile_shapes_and_classes(tiles):
    for t in tiles:
        assert t.image.shape == (*SMALL_2D, 3) and t.image.dtype == np.uint8
        assert t.labels.shape == SMALL_2D and t.classes.dtype == np.uint8
        assert t.axes == "YXC" and t.class_names == HE_CLASSES
        assert set(np.unique(t.classes)) <= {0, 1, 2, 3}
        np.testing.assert_array_equal(t.classes > 0, t.labels > 0)
        for i in np.unique(t.labels)[1:]:  # one class per instance
            assert len(np.unique(t.classes[t.labels == i])) == 1
    present = set().union(*(np.unique(t.classes).tolist() for t in tiles))
    assert present == {0, 1, 2, 3}


def test_he_classes_differ_in_size_shape_and_stain(tiles):
    props = {1: [], 2: [], 3: []}
    for t in tiles:
        gray = t.image.astype(float).mean(-1)
        for rp in regionprops(t.labels, intensity_image=gray):
            cls = int(t.classes[tuple(rp.coords[0])])
            props[cls].append((rp.area, rp.eccentricity, rp.intensity_mean))
    epi, fib, lym = (np.array(props[c]) for c in (1, 2, 3))
    assert np.median(epi[:, 0]) > 2 * np.median(lym[:, 0])  # epithelial larger than lymphocytes
    assert np.median(fib[:, 1]) > 0.9 > np.median(lym[:, 1])  # fibroblasts elongated, lymphocytes round
    assert np.median(lym[:, 2]) < np.median(epi[:, 2])  # lymphocytes darker
    stroma = np.concatenate([t.image.astype(float).mean(-1)[t.labels == 0] for t in tiles])
    assert np.median(epi[:, 2]) < np.median(stroma)  # nuclei darker than stroma


def test_he_deterministic_and_stain_varies():
    a, b = make_he_tile(SMALL_2D, seed=5), make_he_tile(SMALL_2D, seed=5)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.classes, b.classes)
    c = make_he_tile(SMALL_2D, seed=6)
    bg_a = a.image[a.labels == 0].mean(0)
    bg_c = c.image[c.labels == 0].mean(0)
    assert np.abs(bg_a - bg_c).max() > 1.0


@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        (None, "3d-nuclei", (64, 256, 256)),
        (None, "2d-he", (256, 256)),
        ("32x128x96", "3d-nuclei", (32, 128, 96)),
        ("32,128,96", "3d-nuclei", (32, 128, 96)),
        ("128", "2d-he", (128, 128)),
        ((100, 200), "2d-he", (100, 200)),
    ],
)
def test_parse_size(text, kind, expected):
    assert parse_size(text, kind=kind) == expected


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("abc", "2d-he", "integers"),
        ("64x64x64", "2d-he", "2 values"),
        ("8x64x64", "3d-nuclei", "between"),
        ("64x64", "3d-nuclei", "3 values"),
        ("99999", "2d-he", "between"),
        ("64", "4d-cells", "kind must be one of"),
    ],
)
def test_parse_size_rejects(text, kind, message):
    with pytest.raises(ConfigError, match=message):
        parse_size(text, kind=kind)


def test_generate_writes_files_and_is_prefix_stable(tmp_path):
    ds = generate_demo_data(tmp_path / "a", kind="2d-he", n=2, size="96", seed=4)
    assert [p.name for p in ds.images] == ["he_000.tif", "he_001.tif"]
    assert (tmp_path / "a" / "classes.txt").read_text().split() == list(HE_CLASSES)
    info = read_info(ds.images[0])
    assert info.axes == "YXC" and info.shape == (96, 96, 3)
    labels = read_image(ds.labels[0])
    assert labels.dtype == np.uint16 and labels.shape == (96, 96)
    assert sorted(np.unique(labels)) == list(range(int(labels.max()) + 1))  # consecutive ids
    classes = read_image(ds.classes[1])
    np.testing.assert_array_equal(classes > 0, read_image(ds.labels[1]) > 0)
    # image i depends only on (seed, i): a longer run starts with the same images
    more = generate_demo_data(tmp_path / "b", kind="2d-he", n=3, size="96", seed=4)
    np.testing.assert_array_equal(read_image(ds.images[1]), read_image(more.images[1]))
    assert ds.n_objects == tuple(int(read_image(p).max()) for p in ds.labels)


def test_generate_3d_writes_zyx(tmp_path):
    ds = generate_demo_data(tmp_path, kind="3d-nuclei", n=1, size=SMALL_3D, seed=0)
    info = read_info(ds.images[0])
    assert info.axes == "ZYX" and info.shape == SMALL_3D and info.dtype == np.uint16
    assert read_info(ds.labels[0]).shape == SMALL_3D
    assert (tmp_path / "classes.txt").read_text() == "nucleus\n"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "3d-cells"},
        {"kind": "2d-he", "difficulty": "extreme"},
        {"kind": "2d-he", "n": 0},
        {"kind": "2d-he", "seed": -1},
        {"kind": "2d-he", "size": "32"},
    ],
)
def test_generate_rejects_bad_options_and_writes_nothing(tmp_path, kwargs):
    out = tmp_path / "out"
    with pytest.raises(ConfigError):
        generate_demo_data(out, **kwargs)
    assert not out.exists()


def test_generate_rejects_a_file_as_output(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    with pytest.raises(ConfigError, match="folder"):
        generate_demo_data(f, kind="2d-he", n=1, size=64)


def test_progress_is_reported(tmp_path):
    calls = []
    generate_demo_data(tmp_path, kind="2d-he", n=2, size=64, progress=lambda *a: calls.append(a))
    assert calls[0] == ("demo data", 0, 2) and calls[-1] == ("demo data", 2, 2)
