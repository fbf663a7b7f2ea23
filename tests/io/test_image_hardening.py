"""Broken, odd and hostile image files: one-line PointsegErrors at open time or region by region."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile
import zarr
from PIL import Image

from pointseg_cli.errors import ImageFormatError, ImageReadError
from pointseg_cli.io.images import open_image, read_image, read_info, write_zarr
from tests.io.ngff_helpers import ngff_attrs


def _cut(path, fraction):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


STACK = (np.arange(6 * 32 * 32) % 251).astype(np.uint8).reshape(6, 32, 32)


@pytest.mark.parametrize("kind", ["plain", "ome", "imagej", "zlib", "ome-zlib"])
@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_multipage_tiff_is_refused_not_read_as_first_page(tmp_path, kind, fraction):
    kw = {
        "plain": {}, "zlib": {"compression": "zlib"},
        "ome": {"ome": True, "metadata": {"axes": "ZYX"}},
        "imagej": {"imagej": True, "metadata": {"axes": "ZYX"}},
        "ome-zlib": {"ome": True, "compression": "zlib", "metadata": {"axes": "ZYX"}},
    }[kind]
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, STACK, photometric="minisblack", **kw)
    _cut(path, fraction)
    with pytest.raises(ImageReadError, match=r"'v.tif'.*(truncated|corrupt)") as err:
        open_image(path).read()
    assert "\n" not in str(err.value)


def test_truncation_message_names_expected_and_found(tmp_path):
    path = tmp_path / "v.tif"
    tifffile.imwrite(path, STACK, imagej=True, metadata={"axes": "ZYX"})
    _cut(path, 0.5)
    with pytest.raises(ImageReadError, match=r"expected 6 pages \(ImageJ metadata\), found 1"):
        read_info(path)


def test_missing_pages_by_shaped_metadata(tmp_path):
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, STACK[:5], description=json.dumps({"shape": [6, 32, 32]}), metadata=None)
    with pytest.raises(ImageReadError, match=r"expected 6 pages of \(32, 32\), found 5"):
        read_info(path)


def test_corrupt_compressed_strip_fails_when_read_not_silently(tmp_path):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, STACK, compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tf:
        start = int(tf.pages[3].dataoffsets[0])
    data = bytearray(path.read_bytes())
    for i in range(start + 4, start + 40):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))
    image = open_image(path)  # the header is intact
    np.testing.assert_array_equal(image.read((slice(0, 2), slice(None), slice(None))), STACK[:2])
    with pytest.raises(ImageReadError, match="cannot read pixels of 'z.tif'"):
        image.read((slice(3, 4), slice(None), slice(None)))


def test_garbage_and_empty_tiff(tmp_path):
    (tmp_path / "e.tif").write_bytes(b"")
    (tmp_path / "g.tif").write_bytes(b"II*\x00" + b"\xff" * 100)
    for name in ("e.tif", "g.tif"):
        with pytest.raises(ImageReadError, match=f"'{name}'"):
            read_info(tmp_path / name)


def test_permission_denied_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "p.tif"
    tifffile.imwrite(path, STACK)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tifffile, "TiffFile", denied)
    with pytest.raises(ImageReadError, match="cannot read 'p.tif': permission denied"):
        read_info(path)


def test_read_failures_from_any_backend_become_image_read_errors(tmp_path, monkeypatch):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, STACK)
    image = open_image(path)

    class Broken:
        shape, dtype = image._array.shape, image._array.dtype

        def __getitem__(self, index):
            raise OSError(5, "Input/output error")

    image._array = Broken()
    with pytest.raises(ImageReadError, match="cannot read pixels of 'a.tif'.*Input/output error"):
        image.read()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_and_inf_pixels_are_refused(tmp_path, value):
    data = np.ones((16, 16), np.float32)
    data[3, 4] = value
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, data)
    assert read_info(path).dtype == np.float32  # metadata alone is fine
    with pytest.raises(ImageReadError, match="1 NaN or infinite pixel"):
        read_image(path)


def test_complex_and_cmyk_are_refused(tmp_path):
    tifffile.imwrite(tmp_path / "c.tif", np.zeros((8, 8), np.complex64))
    with pytest.raises(ImageFormatError, match="complex pixels"):
        read_info(tmp_path / "c.tif")
    tifffile.imwrite(tmp_path / "k.tif", np.zeros((8, 8, 4), np.uint8), photometric="separated")
    with pytest.raises(ImageFormatError, match="CMYK"):
        read_info(tmp_path / "k.tif")
    Image.new("CMYK", (8, 8)).save(tmp_path / "k.jpg")
    with pytest.raises(ImageFormatError, match="CMYK"):
        read_info(tmp_path / "k.jpg")


def test_palette_png_and_tiff_are_expanded_to_colours(tmp_path):
    index = (np.arange(64) % 4).reshape(8, 8).astype(np.uint8)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]], np.uint8)
    im = Image.fromarray(index, mode="P")
    im.putpalette(colours.ravel().tolist())
    im.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), colours[index])
    cmap = np.zeros((3, 256), np.uint16)
    cmap[:, :4] = colours.T.astype(np.uint16) * 257
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=cmap)
    info = read_info(tmp_path / "p.tif")
    assert info.axes == "YXC" and info.channels == 3 and info.dtype == np.uint8
    np.testing.assert_array_equal(read_image(tmp_path / "p.tif"), colours[index])


def test_gray_alpha_drops_alpha(tmp_path):
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), gray)
    tifffile.imwrite(tmp_path / "la.tif", np.stack([gray, np.full_like(gray, 9)], -1),
                     photometric="minisblack", extrasamples=["unassalpha"])
    info = read_info(tmp_path / "la.tif")
    assert info.axes == "YX" and info.channels == 1
    np.testing.assert_array_equal(read_image(tmp_path / "la.tif"), gray)
    rgba = np.concatenate([np.stack([gray] * 3, -1), np.full((8, 8, 1), 7, np.uint8)], -1)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert read_info(tmp_path / "rgba.tif").channels == 3
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.tif"), rgba[..., :3])


# ------------------------------------------------------------------ OME-Zarr


@pytest.fixture
def omezarr(tmp_path):
    def make(name="v.ome.zarr"):
        return write_zarr(tmp_path / name, STACK, axes="ZYX", chunks=(1, 16, 16))
    return make


def _edit_multiscales(path, edit):
    group = zarr.open_group(str(path), mode="r+")
    ome, save = ngff_attrs(group)
    save(edit(ome["multiscales"]))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ms: {"not": "a list"}, "'multiscales' must be a list"),
        (lambda ms: [{"datasets": []}], "no 'datasets' list"),
        (lambda ms: [{"datasets": [{}]}], "no 'path'"),
        (lambda ms: [{**ms[0], "datasets": [{"path": "7"}]}], "dataset '7' named in 'multiscales' is missing"),
        (lambda ms: [{**ms[0], "axes": ms[0]["axes"][:2]}], "names 2 axes but the dataset has 3"),
        (lambda ms: [{**ms[0], "axes": [{"type": "space"}] * 3}], "an axis has no name"),
    ],
)
def test_malformed_multiscales(omezarr, edit, message):
    path = omezarr()
    _edit_multiscales(path, edit)
    with pytest.raises(ImageReadError, match=message):
        read_info(path)


def test_missing_dataset_folder_and_corrupt_chunk(omezarr):
    path = omezarr("a.ome.zarr")
    shutil.rmtree(path / "0")
    with pytest.raises(ImageReadError, match="dataset '0' named in 'multiscales' is missing"):
        read_info(path)
    path = omezarr("b.ome.zarr")
    chunk = next(p for p in (path / "0").rglob("*") if p.is_file() and p.name != "zarr.json" and p.name != ".zarray")
    chunk.write_bytes(b"garbage")
    with pytest.raises(ImageReadError, match="cannot read pixels of 'b.ome.zarr'"):
        read_image(path)


def test_unparsable_zarr_metadata(omezarr):
    path = omezarr()
    meta = next(p for p in (path / "zarr.json", path / ".zattrs") if p.exists())
    meta.write_text("{ not json")
    with pytest.raises(ImageReadError, match="'v.ome.zarr'"):
        read_info(path)
