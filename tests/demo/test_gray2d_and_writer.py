from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.demo import (
    KINDS,
    assign_splits,
    generate_demo_data,
    make_gray_nuclei,
    object_clicks,
    parse_size,
)
from pointseg_cli.io.images import read_image, read_info
from pointseg_cli.io.points import read_points_csv

SMALL = (128, 128)


def test_gray_shapes_dtypes_and_labels():
    s = make_gray_nuclei(SMALL, seed=3)
    assert s.image.shape == SMALL and s.image.dtype == np.uint16 and s.axes == "YX"
    assert s.labels.dtype == np.uint16 and s.class_names == ("nucleus",)
    np.testing.assert_array_equal(s.classes, (s.labels > 0).astype(np.uint8))
    n = int(s.labels.max())
    assert n >= 5 and np.unique(s.labels).tolist() == list(range(n + 1))


def test_gray_nuclei_touch_and_vary_in_brightness():
    s = make_gray_nuclei((256, 256), seed=1, difficulty="hard")
    img = s.image.astype(float)
    means = np.array([img[s.labels == i].mean() for i in range(1, int(s.labels.max()) + 1)])
    bg = img[s.labels == 0]
    assert means.max() > 2 * means.min()  # varied intensity
    assert np.percentile(means, 10) > np.median(bg)  # yet nuclei stand out from the background
    # some nuclei touch: neighbouring pixels with two different non-zero ids
    a, b = s.labels[:, :-1], s.labels[:, 1:]
    assert np.any((a > 0) & (b > 0) & (a != b))


def test_gray_deterministic_and_difficulty_changes_crowding():
    a, b = make_gray_nuclei(SMALL, seed=4), make_gray_nuclei(SMALL, seed=4)
    np.testing.assert_array_equal(a.image, b.image)
    easy = [make_gray_nuclei((256, 256), seed=s, difficulty="easy").labels.max() for s in range(3)]
    hard = [make_gray_nuclei((256, 256), seed=s, difficulty="hard").labels.max() for s in range(3)]
    assert sum(hard) > sum(easy)


def test_generate_gray_writes_points_on_every_nucleus(tmp_path):
    ds = generate_demo_data(tmp_path, kind="2d-gray", n=2, size=96, seed=1)
    assert read_info(ds.images[0]).axes == "YX"
    assert ds.split is None and ds.points_trainval is None and not (tmp_path / "split.csv").exists()
    pts = read_points_csv(ds.points)
    assert set(pts.class_names) == {"nucleus"} and np.isnan(pts.coords[:, 0]).all()
    for stem, lab_path in zip(("gray_000", "gray_001"), ds.labels, strict=True):
        labels = read_image(lab_path)
        hit = labels[tuple(pts.for_image(stem).pixel_coords(2).T)]
        assert sorted(hit.tolist()) == list(range(1, int(labels.max()) + 1))


def test_object_clicks_land_inside_concave_objects():
    labels = np.zeros((20, 20), np.uint16)
    labels[2:18, 2:5] = 1  # an L shape whose centroid lies outside it
    labels[15:18, 2:18] = 1
    labels[8:10, 10:12] = 2
    ids, coords = object_clicks(labels)
    assert ids.tolist() == [1, 2]
    assert labels[tuple(coords.T)].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1, ["train"]), (2, ["train", "test"]), (4, ["train", "train", "val", "test"]),
     (10, ["train"] * 6 + ["val"] * 2 + ["test"] * 2)],
)
def test_assign_splits(n, expected):
    assert assign_splits(n) == expected


def test_new_kinds_are_registered_with_sizes():
    assert {"2d-gray", "3d-sim"} <= set(KINDS)
    assert parse_size(None, kind="2d-gray") == (256, 256)
    assert parse_size(None, kind="3d-sim") == (40, 384, 384)
    assert parse_size("16x96x96", kind="3d-sim") == (16, 96, 96)
