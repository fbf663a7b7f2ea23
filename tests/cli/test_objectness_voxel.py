"""`pointseg objectness` and the voxel size: read, overridden, used as spacing (switchable), written out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import read_info, write_tiff


@pytest.fixture
def scene(tmp_path, rng):
    zz, yy, xx = np.mgrid[:8, :32, :32]
    blob = ((zz - 4) * 4) ** 2 + (yy - 16) ** 2 + (xx - 16) ** 2 < 64
    img = (np.where(blob, 180, 30) + rng.normal(0, 4, blob.shape)).clip(0, 255).astype(np.uint8)
    write_tiff(tmp_path / "v.tif", img, axes="ZYX", voxel_size=(2.0, 0.5, 0.5))
    (tmp_path / "points.csv").write_text("image,z,y,x,class\nv,4,16,16,nucleus\n")
    return tmp_path


def _objectness(runner, scene, out, *extra):
    res = runner.invoke(app, ["objectness", str(scene / "points.csv"), str(scene / "v.tif"), "--out", str(out),
                              *extra], terminal_width=200)
    assert res.exit_code == 0, res.output
    return json.loads((out / "objectness.json").read_text())


def test_voxel_size_is_spacing_by_default_and_written_out(runner, scene):
    sidecar = _objectness(runner, scene, scene / "a")
    assert sidecar["use_voxel_size"] is True
    assert read_info(scene / "a" / "v.objectness.tif").voxel_size == pytest.approx((2.0, 0.5, 0.5))
    assert read_info(scene / "a" / "v.regions.tif").voxel_size == pytest.approx((2.0, 0.5, 0.5))
    off = _objectness(runner, scene, scene / "b", "--no-use-voxel-size")
    assert off["use_voxel_size"] is False
    assert read_info(scene / "b" / "v.objectness.tif").voxel_size is not None  # recorded even when not used
    assert _spacing(scene / "a" / "v.objectness.tif") == [2.0, 0.5, 0.5]
    assert _spacing(scene / "b" / "v.objectness.tif") is None


def _spacing(path):
    from html import unescape

    import tifffile

    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    return json.loads(unescape(xml.split("<Description>")[1].split("</Description>")[0]))["spacing"]


def test_voxel_size_override(runner, scene):
    sidecar = _objectness(runner, scene, scene / "c", "--voxel-size", "1,0.25,0.25")
    assert sidecar["voxel_size_override"] == [1.0, 0.25, 0.25]
    assert read_info(scene / "c" / "v.objectness.tif").voxel_size == pytest.approx((1.0, 0.25, 0.25))
    res = runner.invoke(app, ["objectness", str(scene / "points.csv"), str(scene / "v.tif"), "--out",
                              str(scene / "d"), "--voxel-size", "1,1"])
    assert res.exit_code in (1, 2) and "voxel size has 2 values" in res.output
