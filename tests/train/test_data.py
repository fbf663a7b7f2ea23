"""Data preparation: split, masks, objectness folder and the bad inputs of the issue."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.errors import ImageFormatError, InputError, PointsError
from pointseg_cli.io.images import write_tiff
from pointseg_cli.io.points import PointTable, read_points_csv
from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.data import find_mask, prepare_data, read_class_mask, split_stems

from .synthetic import make_dataset


@pytest.fixture
def data(tmp_path):
    make_dataset(tmp_path, n_images=3, shape=(40, 40), n_objects=3, radius=4)
    return tmp_path


def _cfg(**kw) -> TrainConfig:
    base = dict(classes=("cell",), crop=(32, 32), val_fraction=0.34)
    base.update(kw)
    return TrainConfig(**base)


def test_split_is_seeded_and_explicit_val_images_win() -> None:
    stems = [f"s{i}" for i in range(10)]
    t1, v1 = split_stems(stems, _cfg(val_fraction=0.2, seed=1))
    assert len(v1) == 2 and sorted(t1 + v1) == stems
    assert split_stems(stems, _cfg(val_fraction=0.2, seed=1)) == (t1, v1)
    assert split_stems(stems, _cfg(val_images=("s3",))) == ([s for s in stems if s != "s3"], ["s3"])
    with pytest.raises(InputError, match="have no points"):
        split_stems(stems, _cfg(val_images=("zz",)))
    assert split_stems(["only"], _cfg(val_fraction=0.5)) == (["only"], [])


def test_prepare_data_builds_targets_and_caches_objectness(data) -> None:
    table = read_points_csv(data / "points.csv")
    cfg = _cfg(val_masks_dir=str(data / "masks"))
    prepared = prepare_data(cfg, table, [data / "images"], cache_dir=data / "cache")
    assert len(prepared.train) == 2 and len(prepared.val) == 1
    im = prepared.train[0]
    assert im.image.shape == (1, 40, 40) and im.image.dtype == np.float32
    assert im.soft.shape == (2, 40, 40) and im.background.dtype == bool
    assert im.val_mask is None and prepared.val[0].val_mask is not None
    assert set(np.unique(prepared.val[0].val_mask)) == {0, 1}
    cached = sorted((data / "cache").glob("*.npz"))
    assert len(cached) == 3
    again = prepare_data(cfg, table, [data / "images"], cache_dir=data / "cache")
    np.testing.assert_array_equal(again.train[0].soft, im.soft)


def test_objectness_from_folder_checks_shapes(data) -> None:
    table = read_points_csv(data / "points.csv")
    obj = data / "obj"
    obj.mkdir()
    for stem in table.stems:
        write_tiff(obj / f"{stem}.objectness.tif", np.full((2, 40, 40), 0.5, np.float32), axes="CYX")
        write_tiff(obj / f"{stem}.background.tif", np.zeros((40, 40), np.uint8), axes="YX")
    prepared = prepare_data(_cfg(objectness="dir", objectness_dir=str(obj)), table, [data / "images"])
    assert float(prepared.train[0].soft.mean()) == pytest.approx(0.5)
    write_tiff(obj / "img0.objectness.tif", np.zeros((3, 40, 40), np.float32), axes="CYX")
    with pytest.raises(InputError, match=r"expected \(2, 40, 40\)"):
        prepare_data(_cfg(objectness="dir", objectness_dir=str(obj), val_images=("img2",)), table, [data / "images"])


def test_bad_inputs(data) -> None:
    table = read_points_csv(data / "points.csv")
    with pytest.raises(InputError, match="crop .* is larger than image"):
        prepare_data(_cfg(crop=(64, 64)), table, [data / "images"])
    missing = PointTable(image=np.array(["ghost"]), coords=np.array([[np.nan, 1.0, 1.0]]),
                         class_name=np.array(["cell"]), class_names=("cell",))
    with pytest.raises(PointsError, match="not found among"):
        prepare_data(_cfg(), missing, [data / "images"])
    outside = PointTable(image=np.array(["img0"]), coords=np.array([[np.nan, 50.0, 1.0]]),
                         class_name=np.array(["cell"]), class_names=("cell",))
    with pytest.raises(PointsError, match="outside"):
        prepare_data(_cfg(), outside, [data / "images"])
    write_tiff(data / "masks" / "img0.labels.tif", np.zeros((30, 40), np.uint8), axes="YX")
    with pytest.raises(InputError, match="has shape"):
        prepare_data(_cfg(supervision="masks", masks_dir=str(data / "masks")), table, [data / "images"])
    write_tiff(data / "images" / "rgb.tif", np.zeros((40, 40, 3), np.uint8), axes="YXC")
    rgb = PointTable.concat([table, PointTable(image=np.array(["rgb"]), coords=np.array([[np.nan, 5.0, 5.0]]),
                                               class_name=np.array(["cell"]), class_names=("cell",))])
    with pytest.raises(ImageFormatError, match="share dimensionality and channel count"):
        prepare_data(_cfg(), rgb, [data / "images"])


def test_mask_lookup_and_class_ids(data) -> None:
    path = find_mask(data / "masks", "img1")
    assert path.name == "img1.labels.tif"
    with pytest.raises(InputError, match="no mask for image"):
        find_mask(data / "masks", "nope")
    write_tiff(data / "m.tif", np.array([[0, 3], [1, 2]], np.uint8), axes="YX")
    np.testing.assert_array_equal(read_class_mask(data / "m.tif", (2, 2), 1), [[0, 1], [1, 1]])
    with pytest.raises(InputError, match="expected class ids 0..2"):
        read_class_mask(data / "m.tif", (2, 2), 2)


def test_instance_mask_with_class_map_beside_gives_classes_and_instances(tmp_path) -> None:
    """The demo-data layout (``x.masks.tif`` instance ids + ``x.classes.tif``) trains several classes
    with full supervision, and the centre head sees touching objects of one class as two."""
    from pointseg_cli.train.data import read_instance_mask

    inst = np.array([[1, 1, 2, 2], [3, 3, 0, 0]], np.uint16)  # 1 and 2 touch and share class 1
    classes = np.array([[1, 1, 1, 1], [2, 2, 0, 0]], np.uint8)
    write_tiff(tmp_path / "x.masks.tif", inst, axes="YX")
    write_tiff(tmp_path / "x.classes.tif", classes, axes="YX")
    np.testing.assert_array_equal(read_class_mask(tmp_path / "x.masks.tif", (2, 4), 2), classes)
    np.testing.assert_array_equal(read_instance_mask(tmp_path / "x.masks.tif", (2, 4), 2), inst)
    (tmp_path / "x.classes.tif").unlink()  # no map: the mask must hold class ids, and ids 1..3 are too many
    with pytest.raises(InputError, match="expected class ids 0..2"):
        read_class_mask(tmp_path / "x.masks.tif", (2, 4), 2)


def test_stain_reference_normalises_images_before_objectness_and_intensity(tmp_path) -> None:
    from pointseg_cli.io.images import read_image
    from pointseg_cli.objectness.pipeline import ObjectnessConfig, objectness_for_image
    from pointseg_cli.preprocess.normalize import normalize_image
    from pointseg_cli.preprocess.stain import normalize_to_reference, reference_from_file

    from .he_synthetic import make_he_dataset

    csv, images, _, target = make_he_dataset(tmp_path)
    table = read_points_csv(csv)
    ref = reference_from_file(target)
    plain = _cfg(classes=("nucleus",), channels=3, val_fraction=0.0)
    stained = plain.replace(normalization={**plain.normalization, "stain": ref})
    got = prepare_data(stained, table, [images], cache_dir=tmp_path / "cache")
    raw = read_image(images / "he0.tif")
    colours = normalize_to_reference(raw, ref)
    assert np.abs(colours.astype(int) - raw).mean() > 1  # the mapping really changes the pixels
    want = np.moveaxis(normalize_image(colours, channel_axis=-1), -1, 0)
    np.testing.assert_allclose(got.train[0].image, want, atol=1e-6)
    obj = objectness_for_image(colours, table.for_image("he0"), config=ObjectnessConfig(), channel_axis=-1)
    np.testing.assert_allclose(got.train[0].soft, obj.soft_labels(1).astype(np.float16))
    # the cache key covers the stain entry: the plain run computes (and caches) its own objectness
    prepare_data(plain, table, [images], cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("he0.*.npz"))) == 2


def test_failing_preparation_leaves_no_cache_folder(data) -> None:
    table = read_points_csv(data / "points.csv")
    with pytest.raises(InputError, match="is larger than image"):
        prepare_data(_cfg(crop=(64, 64)), table, [data / "images"], cache_dir=data / "run" / "cache")
    assert not (data / "run").exists()


def test_train_masks_accept_every_mask_name(data) -> None:
    """``x_masks.tif`` (accepted by ``objectness --tune``) used to be refused by ``train --masks``."""
    for path in sorted((data / "masks").iterdir()):
        path.rename(path.with_name(path.name.replace(".labels.tif", "_masks.tif")))
    table = read_points_csv(data / "points.csv")
    prepared = prepare_data(_cfg(supervision="masks", masks_dir=str(data / "masks"), losses=("pce",)), table,
                            [data / "images"])
    assert all(im.mask is not None and set(np.unique(im.mask)) == {0, 1} for im in prepared.train)


def test_center_targets_from_points_and_from_instance_masks(data) -> None:
    table = read_points_csv(data / "points.csv")
    prepared = prepare_data(_cfg(), table, [data / "images"], cache_dir=data / "cache")
    im = prepared.train[0]
    assert im.center.shape == (2, 40, 40) and im.center.dtype == np.float16
    peaks = im.center[0][tuple(im.points.T)]
    np.testing.assert_array_equal(peaks, 1.0)  # a peak on every click
    assert 0 < im.center[1].mean() <= 1  # some pixels known, maybe not all
    # the grown objects are cached with the objectness: a second run reads the same target
    again = prepare_data(_cfg(), table, [data / "images"], cache_dir=data / "cache")
    np.testing.assert_array_equal(again.train[0].center, im.center)
    masks = prepare_data(_cfg(supervision="masks", masks_dir=str(data / "masks")), table, [data / "images"])
    full = masks.train[0].center
    assert (full[1] == 1).all() and full[0].max() == 1.0
    without = prepare_data(_cfg(losses=("pce", "obj")), table, [data / "images"])
    assert without.train[0].center is None
