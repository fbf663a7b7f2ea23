"""Mask file naming, finders and the label reader: one set of names for every command."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import InputError
from pointseg_cli.io.masks import (
    MASK_SUFFIXES,
    find_mask,
    find_masks,
    is_mask_name,
    mask_files,
    mask_stem,
    read_labels,
    relabel_sequential,
)

NAMES = [f"x{suffix}.tif" for suffix in MASK_SUFFIXES]


def _img(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def test_mask_stem():
    assert mask_stem("x/a.labels.tif") == "a"
    assert mask_stem("a_mask.png") == "a"
    assert mask_stem("a_masks.tif") == "a" and mask_stem("a.masks.tif") == "a"
    assert mask_stem("a.ome.tif") == "a"
    assert mask_stem("x.labels.ome.tif") == "x"
    assert mask_stem(".labels.tif") == ".labels"
    assert is_mask_name("a_labels.tif") and not is_mask_name("a.tif")


@pytest.mark.parametrize("name", NAMES)
def test_every_finder_accepts_every_mask_name(tmp_path, name):
    """``objectness --tune`` (find_masks), ``train --masks`` (find_mask), ``annotate-import --from-masks``
    and ``evaluate`` (mask_files) used to disagree on names such as ``x_masks.tif``."""
    image = _img(tmp_path / "images" / "x.tif", np.zeros((4, 4), np.uint8))
    mask = _img(tmp_path / "masks" / name, np.zeros((4, 4), np.uint8))
    assert find_mask(tmp_path / "masks", "x") == mask
    assert find_masks(tmp_path / "masks", [image]) == {"x": mask}
    assert mask_files(tmp_path / "masks") == {"x": mask}


def test_train_and_objectness_read_the_same_mask_names(tmp_path):
    from pointseg_cli.objectness import batch
    from pointseg_cli.train import data

    assert data.find_mask is find_mask and batch.find_masks is find_masks


def test_masks_beside_images_never_take_the_image_itself(tmp_path):
    folder = tmp_path / "data"
    a = _img(folder / "a.tif", np.zeros((4, 4), np.uint8))
    b = _img(folder / "b.tif", np.zeros((4, 4), np.uint8))
    a_mask = _img(folder / "a_masks.tif", np.zeros((4, 4), np.uint8))
    _img(folder / "a.objectness.tif", np.zeros((4, 4), np.float32))
    assert find_mask(folder, "a", exclude=a) == a_mask
    assert find_masks(folder, [a, b]) == {"a": a_mask}  # b.tif is not its own mask
    with pytest.raises(InputError, match="no mask for image 'b'"):
        find_mask(folder, "b", exclude=b)
    assert mask_files(folder) == {"a": a_mask}  # marked masks win over the images beside them


def test_plain_names_in_a_mask_only_folder(tmp_path):
    m = _img(tmp_path / "m" / "x.tif", np.zeros((4, 4), np.uint8))
    _img(tmp_path / "m" / "x.preview.png", np.zeros((4, 4), np.uint8))
    assert find_mask(tmp_path / "m", "x") == m
    assert mask_files(tmp_path / "m") == {"x": m}


def test_finder_errors(tmp_path):
    with pytest.raises(InputError, match="mask folder '.*nope' does not exist"):
        find_mask(tmp_path / "nope", "x")
    _img(tmp_path / "two" / "x.labels.tif", np.zeros((4, 4), np.uint8))
    _img(tmp_path / "two" / "x_mask.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="two masks for 'x'"):
        find_mask(tmp_path / "two", "x")
    with pytest.raises(InputError, match="two masks for 'x'"):
        mask_files(tmp_path / "two")
    (tmp_path / "empty").mkdir()
    _img(tmp_path / "empty" / "x.objectness.tif", np.zeros((4, 4), np.float32))
    with pytest.raises(InputError, match="holds no masks"):
        mask_files(tmp_path / "empty")


def test_read_labels_validation(tmp_path):
    assert read_labels(_img(tmp_path / "f.tif", np.ones((3, 3), np.float32))).dtype == np.int64
    assert read_labels(_img(tmp_path / "b.tif", np.ones((3, 3), bool))).dtype == np.uint8
    with pytest.raises(InputError, match="non-integer"):
        read_labels(_img(tmp_path / "g.tif", np.full((3, 3), 0.5, np.float32)))
    with pytest.raises(InputError, match="negative"):
        read_labels(_img(tmp_path / "h.tif", np.full((3, 3), -2, np.int8)))
    with pytest.raises(InputError, match="channels; expected one"):
        read_labels(_img(tmp_path / "i.tif", np.zeros((3, 3, 3), np.uint8)))


def test_huge_instance_ids_are_relabelled_in_order(tmp_path):
    lab = np.zeros((6, 6), np.uint32)
    lab[0:2, 0:2] = 2**32 - 1
    lab[3:5, 3:5] = 70_000
    lab[0, 5] = 5
    path = _img(tmp_path / "big.tif", lab)
    ids = read_labels(path, instances=True)
    assert ids.dtype == np.uint16 and ids.max() == 3
    np.testing.assert_array_equal(ids, np.select([lab == 5, lab == 70_000, lab > 0], [1, 2, 3], 0))
    assert read_labels(path).max() == 2**32 - 1  # class ids are never renumbered
    small = _img(tmp_path / "small.tif", (lab > 0).astype(np.uint16) * 9)
    assert read_labels(small, instances=True).max() == 9  # small ids are kept as they are


def test_relabel_sequential_without_background():
    out = relabel_sequential(np.array([[7, 7], [2**40, 3]], np.int64))
    np.testing.assert_array_equal(out, [[2, 2], [3, 1]])
