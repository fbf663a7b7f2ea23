from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import ImageFormatError
from pointseg_cli.io.images import read_image, read_info
from pointseg_cli.io.ome import ome_physical_sizes, write_ome_tiff


def _pixels(path):
    with tifffile.TiffFile(path) as tf:
        return ET.fromstring(tf.ome_metadata).find(".//{*}Pixels")


def test_3d_volume_round_trips_with_physical_sizes(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)
    path = write_ome_tiff(tmp_path / "v.tif", data, axes="ZYX", voxel_size=(0.125, 0.04, 0.05),
                          compression="zlib", metadata={"seed": 1})
    np.testing.assert_array_equal(read_image(path), data)
    assert read_info(path).axes == "ZYX" and read_info(path).voxel_size == (0.125, 0.04, 0.05)
    px = _pixels(path)
    assert [float(px.get(f"PhysicalSize{a}")) for a in "ZYX"] == [0.125, 0.04, 0.05]
    assert px.get("PhysicalSizeZUnit") == "µm"
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_rgb_tile_keeps_samples_and_only_xy_sizes(tmp_path):
    data = np.zeros((8, 9, 3), np.uint8)
    path = write_ome_tiff(tmp_path / "rgb.tif", data, axes="YXC", voxel_size=(0.5, 0.5))
    assert read_info(path).axes == "YXC" and read_info(path).shape == (8, 9, 3)
    assert _pixels(path).get("PhysicalSizeZ") is None


@pytest.mark.parametrize(
    ("axes", "voxel_size", "message"),
    [("ZYX", (1.0, 1.0), "3 positive"), ("YX", (0.0, 1.0), "positive"), ("YX", (float("nan"), 1.0), "positive")],
)
def test_bad_voxel_sizes_are_refused(axes, voxel_size, message):
    with pytest.raises(ImageFormatError, match=message):
        ome_physical_sizes(axes, voxel_size)


def test_axes_must_fit_the_array(tmp_path):
    with pytest.raises(ImageFormatError, match="do not fit"):
        write_ome_tiff(tmp_path / "x.tif", np.zeros((4, 5), np.uint8), axes="ZYX", voxel_size=(1, 1, 1))
    assert not (tmp_path / "x.tif").exists()
