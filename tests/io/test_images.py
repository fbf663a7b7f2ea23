from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import ImageFormatError, InputError
from pointseg_cli.io.images import (
    atomic_output,
    find_images,
    image_stem,
    is_derived,
    open_image,
    read_image,
    read_info,
    write_png,
    write_tiff,
    write_zarr,
)


def _plain(path, data, **kw):
    tifffile.imwrite(path, data, photometric=kw.pop("photometric", "minisblack"), **kw)
    return path


@pytest.mark.parametrize(
    "name, stem",
    [("a.ome.tif", "a"), ("b.tif", "b"), ("c.zarr", "c"), ("d.ome.zarr", "d"), ("e.labels.tif", "e.labels"),
     ("F.OME.TIFF", "F"), ("g.png", "g"), ("h.x.tif", "h.x")],
)
def test_image_stem(name, stem):
    assert image_stem(name) == stem


def test_is_derived():
    assert is_derived("x.labels.tif") and is_derived("x.objectness.tif") and not is_derived("x.tif")


# ------------------------------------------------------------------ axes rules


@pytest.mark.parametrize(
    "shape, axes, canonical",
    [
        ((20, 30), "YX", (20, 30)),
        ((20, 30, 3), "YXC", (20, 30, 3)),
        ((5, 20, 30), "ZYX", (5, 20, 30)),
        ((5, 20, 30, 2), "ZYXC", (5, 20, 30, 2)),
        ((5, 2, 20, 30), "ZYXC", (5, 20, 30, 2)),  # ZCYX stored
        ((3, 9, 20, 30), "ZYXC", (9, 20, 30, 3)),  # CZYX stored
        ((1, 20, 30), "YX", (20, 30)),  # singleton dims are dropped
    ],
)
def test_axes_from_shape(tmp_path, shape, axes, canonical):
    path = _plain(tmp_path / "a.tif", np.zeros(shape, np.uint8))
    info = read_info(path)
    assert info.axes == axes and info.shape == canonical
    assert info.ndim == (3 if "Z" in axes else 2)
    assert info.channels == (canonical[-1] if axes.endswith("C") else 1)


def test_axes_undecidable_and_override(tmp_path):
    path = _plain(tmp_path / "a.tif", np.zeros((9, 9, 20, 30), np.uint8))
    with pytest.raises(ImageFormatError, match="pass --axes"):
        read_info(path)
    info = read_info(path, axes="CZYX")
    assert info.axes == "ZYXC" and info.shape == (9, 20, 30, 9)
    with pytest.raises(ImageFormatError, match="has 3 letters but 'a.tif' has 4 dimensions"):
        read_info(path, axes="ZYX")
    with pytest.raises(ImageFormatError, match="only the letters"):
        read_info(path, axes="QZYX")
    with pytest.raises(ImageFormatError, match="repeats"):
        read_info(path, axes="ZZYX")


def test_override_changes_interpretation(tmp_path):
    path = _plain(tmp_path / "a.tif", np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5))
    assert read_info(path).axes == "ZYX"
    data = read_image(path, axes="CYX")
    assert data.shape == (4, 5, 3)
    np.testing.assert_array_equal(data[..., 1], np.arange(20, 40).reshape(4, 5))


def test_time_series_rejected(tmp_path):
    path = tmp_path / "t.ome.tif"
    tifffile.imwrite(path, np.zeros((3, 20, 30), np.uint8), ome=True, metadata={"axes": "TYX"})
    with pytest.raises(ImageFormatError, match="time series"):
        read_info(path)


def test_imagej_hyperstack_axes(tmp_path):
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, np.zeros((4, 2, 20, 30), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    info = read_info(path)
    assert info.axes == "ZYXC" and info.shape == (4, 20, 30, 2)


# ------------------------------------------------------------------ OME round trip and lazy reads


def test_write_tiff_ome_axes_round_trip(tmp_path, rng):
    data = rng.integers(0, 1000, (2, 4, 16, 24), dtype=np.uint16)  # CZYX
    path = write_tiff(tmp_path / "x.ome.tif", data, axes="CZYX", compression="zlib", metadata={"classes": ["a"]})
    info = read_info(path)
    assert info.stored_axes == "CZYX" and info.axes == "ZYXC" and info.shape == (4, 16, 24, 2)
    np.testing.assert_array_equal(read_image(path), np.moveaxis(data, 0, -1))
    region = open_image(path).read((slice(1, 3), slice(2, 10), slice(5, 6)))
    np.testing.assert_array_equal(region, np.moveaxis(data, 0, -1)[1:3, 2:10, 5:6])


def test_uncompressed_tiff_is_memory_mapped(tmp_path, rng):
    data = rng.integers(0, 255, (6, 32, 40), dtype=np.uint8)
    path = write_tiff(tmp_path / "v.tif", data, axes="ZYX")
    img = open_image(path)
    assert isinstance(img._array, np.memmap)  # nothing loaded until read()
    np.testing.assert_array_equal(img.read((slice(2, 4), slice(0, 32, 2), slice(10, 20))), data[2:4, ::2, 10:20])
    with pytest.raises(ImageFormatError, match="region has 2 slices"):
        img.read((slice(None), slice(None)))


def test_subsample_is_bounded(tmp_path, rng):
    data = rng.integers(0, 255, (8, 64, 64), dtype=np.uint8)
    path = write_tiff(tmp_path / "v.tif", data, axes="ZYX")
    sub = open_image(path).subsample(max_elements=4096)
    assert sub.size <= 4096 * 2 and sub.ndim == 3


def test_zarr_round_trip(tmp_path, rng):
    data = rng.random((3, 10, 12)).astype(np.float32)
    path = write_zarr(tmp_path / "p.ome.zarr", data, axes="CYX", chunks=(1, 5, 6))
    info = read_info(path)
    assert info.stem == "p" and info.axes == "YXC" and info.shape == (10, 12, 3)
    np.testing.assert_array_equal(read_image(path), np.moveaxis(data, 0, -1))
    np.testing.assert_array_equal(open_image(path).read((slice(2, 4), slice(0, 3))), np.moveaxis(data, 0, -1)[2:4, :3])
    assert find_images([tmp_path]) == [path]


def test_png_round_trip(tmp_path, rng):
    rgb = rng.integers(0, 255, (8, 9, 3), dtype=np.uint8)
    path = write_png(tmp_path / "x.preview.png", rgb)
    np.testing.assert_array_equal(read_image(path), rgb)
    with pytest.raises(ImageFormatError, match="uint8"):
        write_png(tmp_path / "y.png", rgb.astype(np.float32))


# ------------------------------------------------------------------ atomic writes


def test_atomic_output_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.tif"
    with pytest.raises(RuntimeError, match="boom"), atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_keeps_old_file_on_error(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_output(target) as tmp:
        tmp.write_text("new")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_write_tiff_failure_leaves_nothing(tmp_path, monkeypatch):
    def broken(path, *args, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        write_tiff(tmp_path / "x.tif", np.zeros((4, 4), np.uint8), axes="YX")
    assert list(tmp_path.iterdir()) == []


def test_write_zarr_failure_leaves_nothing(tmp_path):
    with pytest.raises(ImageFormatError):
        write_zarr(tmp_path / "x.zarr", np.zeros((4, 4), np.uint8), axes="ZYX")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ find_images


def test_find_images_folders_globs_and_derived(tmp_path):
    for name in ("b.tif", "a.ome.tif", "a.labels.tif", "notes.txt", ".hidden.tif"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_images([tmp_path])] == ["a.ome.tif", "b.tif"]
    assert [p.name for p in find_images([tmp_path], include_derived=True)] == ["a.labels.tif", "a.ome.tif", "b.tif"]
    assert [p.name for p in find_images([str(tmp_path / "*.tif")])] == ["a.ome.tif", "b.tif"]
    assert [p.name for p in find_images([tmp_path / "a.labels.tif"])] == ["a.labels.tif"]
    assert len(find_images([tmp_path, tmp_path / "b.tif"])) == 2  # de-duplicated


def test_find_images_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_images([tmp_path / "nope.tif"])
    with pytest.raises(InputError, match="holds no image files"):
        find_images([tmp_path])
    with pytest.raises(InputError, match="matched no image files"):
        find_images([str(tmp_path / "*.tif")])
    (tmp_path / "x.csv").write_text("")
    with pytest.raises(InputError, match="not a supported image"):
        find_images([tmp_path / "x.csv"])


def test_corrupt_tiff(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"not a tiff at all")
    with pytest.raises(ImageFormatError, match="cannot read 'bad.tif' as TIFF"):
        read_info(path)


@pytest.mark.parametrize("axes, shape", [("YXC", (8, 9, 2)), ("ZYXC", (3, 8, 9, 2))])
def test_write_tiff_two_channels_last(tmp_path, axes, shape):
    path = write_tiff(tmp_path / "x.tif", np.zeros(shape, np.uint8), axes=axes)
    assert read_info(path).channels == 2
