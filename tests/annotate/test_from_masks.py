"""One point per labelled instance of label images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from pointseg_cli.annotate import instance_points, points_from_masks
from pointseg_cli.errors import InputError

NAN = math.nan


def test_instance_points_rectangle_and_concave():
    lab = np.zeros((20, 30), np.int32)
    lab[2:9, 3:10] = 4  # centre (5, 6)
    # a U shape: centroid falls in the empty middle
    lab[10:19, 12:15] = 9
    lab[10:19, 22:25] = 9
    lab[16:19, 12:25] = 9
    pts = instance_points(lab)
    assert pts.tolist()[0] == [5, 6]
    y, x = pts[1]
    assert lab[y, x] == 9
    # interior: at least 2 px from the edge of the U
    assert (lab[y - 1 : y + 2, x - 1 : x + 2] == 9).all()


def test_instance_points_3d_and_jitter():
    lab = np.zeros((7, 12, 12), np.uint16)
    lab[1:6, 2:9, 2:9] = 1
    assert instance_points(lab).tolist() == [[3, 5, 5]]
    pts = [instance_points(lab, jitter=2, rng=np.random.default_rng(s))[0] for s in range(20)]
    assert all(lab[tuple(p)] == 1 for p in pts)
    assert all(np.linalg.norm(p - [3, 5, 5]) <= 2 for p in pts)
    assert len({tuple(p) for p in pts}) > 1
    again = [instance_points(lab, jitter=2, rng=np.random.default_rng(s))[0] for s in range(20)]
    np.testing.assert_array_equal(pts, again)


def test_points_from_masks(images, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    lab = np.zeros((20, 30), np.uint8)
    lab[2:9, 3:10] = 1
    lab[12:15, 20:25] = 2
    tifffile.imwrite(masks / "a.labels.tif", lab)
    vol = np.zeros((5, 20, 30), np.int32)
    vol[1:4, 5:10, 5:10] = 7
    tifffile.imwrite(masks / "v_mask.tif", vol)
    res = points_from_masks(masks, images=images, mask_class="cell")
    t = res.table
    assert t.image.tolist() == ["a", "a", "v"] and t.class_names == ("cell",)
    np.testing.assert_array_equal(t.coords, [[NAN, 5, 6], [NAN, 13, 22], [2, 7, 7]])
    assert res.images_without_points == ("b", "mc")
    j1 = points_from_masks(masks, jitter=3, seed=1).table.coords
    j2 = points_from_masks(masks, jitter=3, seed=1).table.coords
    np.testing.assert_array_equal(j1, j2)


def test_points_from_masks_errors(images, tmp_path):
    def mask(name, data):
        folder = tmp_path / name
        folder.mkdir()
        tifffile.imwrite(folder / "a.tif", data)
        return folder

    msg = r"mask 'a.tif' has shape \(10, 10\) but image 'a' has spatial shape \(20, 30\)"
    with pytest.raises(InputError, match=msg):
        points_from_masks(mask("shape", np.ones((10, 10), np.uint8)), images=images)
    with pytest.raises(InputError, match="every pixel is 0"):
        points_from_masks(mask("zero", np.zeros((20, 30), np.uint8)))
    with pytest.raises(InputError, match="non-integer"):
        points_from_masks(mask("float", np.full((20, 30), 0.5, np.float32)))
    with pytest.raises(InputError, match="negative ids"):
        points_from_masks(mask("neg", np.full((20, 30), -1, np.int16)))
    with pytest.raises(InputError, match="channels; expected one"):
        points_from_masks(mask("rgb", np.ones((20, 30, 3), np.uint8)))
    folder = tmp_path / "other"
    folder.mkdir()
    tifffile.imwrite(folder / "q.tif", np.ones((20, 30), np.uint8))
    with pytest.raises(InputError, match=r"mask 'q.tif' matches no image \(stem 'q'\)"):
        points_from_masks(folder, images=images)
    with pytest.raises(InputError, match="--jitter must be >= 0"):
        points_from_masks(folder, jitter=-1)


def test_points_from_masks_with_ids_up_to_2_32(images, tmp_path):
    lab = np.zeros((20, 30), np.uint32)
    lab[2:9, 3:10] = 2**32 - 1
    lab[12:15, 20:25] = 100_000
    (tmp_path / "m").mkdir()
    tifffile.imwrite(tmp_path / "m" / "a_masks.tif", lab)
    t = points_from_masks(tmp_path / "m", images=images).table
    np.testing.assert_array_equal(t.coords, [[NAN, 13, 22], [NAN, 5, 6]])  # in id order


def test_class_maps_beside_the_masks_give_each_point_its_object_class(tmp_path) -> None:

    from pointseg_cli.annotate.from_masks import points_from_masks
    from pointseg_cli.demo import generate_demo_data
    from pointseg_cli.io.images import read_image

    ds = generate_demo_data(tmp_path, kind="2d-he", n=2, size=(128, 128), seed=3)
    res = points_from_masks(tmp_path, images=tmp_path)
    names = tuple((tmp_path / "classes.txt").read_text().split())
    assert res.table.class_names == names and len(set(res.table.class_name)) > 1
    for mask_path in ds.labels:
        stem = mask_path.name.split(".")[0]
        labels, classes = read_image(mask_path), read_image(tmp_path / f"{stem}.classes.tif")
        rows = res.table.image == stem
        for (y, x), name in zip(res.table.coords[rows][:, 1:].astype(int), res.table.class_name[rows], strict=True):
            assert labels[y, x] > 0 and names[int(classes[y, x]) - 1] == name


def test_a_class_map_without_classes_txt_is_refused(tmp_path) -> None:
    import numpy as np
    import pytest
    import tifffile

    from pointseg_cli.annotate.from_masks import points_from_masks
    from pointseg_cli.errors import InputError

    labels = np.zeros((16, 16), np.uint16)
    labels[2:6, 2:6] = 1
    tifffile.imwrite(tmp_path / "a.masks.tif", labels)
    tifffile.imwrite(tmp_path / "a.classes.tif", (labels > 0).astype(np.uint8))
    with pytest.raises(InputError, match="needs a classes.txt"):
        points_from_masks(tmp_path)
