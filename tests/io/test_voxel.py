"""Voxel size read from OME-TIFF, ImageJ TIFF and OME-Zarr metadata (micrometres, spatial order)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import zarr

from pointseg_cli.io.images import read_info, write_tiff, write_zarr
from pointseg_cli.io.voxel import to_micrometres
from tests.io.ngff_helpers import ngff_attrs

VOL = np.zeros((4, 16, 20), np.uint8)


def test_ome_tiff_physical_size_with_units(tmp_path):
    path = tmp_path / "v.ome.tif"
    tifffile.imwrite(path, VOL, ome=True, metadata={
        "axes": "ZYX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.3, "PhysicalSizeZ": 2000.0,
        "PhysicalSizeZUnit": "nm",
    })
    assert read_info(path).voxel_size == pytest.approx((2.0, 0.3, 0.25))


def test_ome_tiff_2d_default_unit_is_micrometre(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, VOL[0], ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
    info = read_info(path)
    assert info.ndim == 2 and info.voxel_size == (0.5, 0.5)


def test_imagej_resolution_and_spacing(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, VOL, imagej=True, resolution=(1 / 0.2, 1 / 0.2),
                     metadata={"axes": "ZYX", "spacing": 1.5, "unit": "micron"})
    assert read_info(path).voxel_size == pytest.approx((1.5, 0.2, 0.2))
    path = tmp_path / "ij_nm.tif"
    tifffile.imwrite(path, VOL, imagej=True, resolution=(1 / 100, 1 / 100),
                     metadata={"axes": "ZYX", "spacing": 400, "unit": "nm"})
    assert read_info(path).voxel_size == pytest.approx((0.4, 0.1, 0.1))


def test_uncalibrated_files_have_no_voxel_size(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", VOL, photometric="minisblack")
    assert read_info(tmp_path / "plain.tif").voxel_size is None
    tifffile.imwrite(tmp_path / "ij.tif", VOL, imagej=True, metadata={"axes": "ZYX", "unit": "pixel"})
    assert read_info(tmp_path / "ij.tif").voxel_size is None
    write_tiff(tmp_path / "ours.tif", VOL, axes="ZYX")
    assert read_info(tmp_path / "ours.tif").voxel_size is None


def test_ome_zarr_coordinate_transformations(tmp_path):
    path = write_zarr(tmp_path / "v.ome.zarr", VOL, axes="ZYX")
    assert read_info(path).voxel_size is None  # scale 1 without a unit: not recorded
    group = zarr.open_group(str(path), mode="r+")
    ome, save = ngff_attrs(group)
    ms = ome["multiscales"]
    ms[0]["axes"] = [{"name": n, "type": "space", "unit": u} for n, u in
                     (("z", "micrometer"), ("y", "nanometer"), ("x", "nanometer"))]
    ms[0]["datasets"][0]["coordinateTransformations"] = [{"type": "scale", "scale": [1.0, 325.0, 325.0]}]
    ms[0]["coordinateTransformations"] = [{"type": "scale", "scale": [2.0, 1.0, 1.0]}]
    save(ms)
    assert read_info(path).voxel_size == pytest.approx((2.0, 0.325, 0.325))


@pytest.mark.parametrize(
    "value, unit, expected",
    [(1, "µm", 1.0), (1, "μm", 1.0), (500, "nm", 0.5), (0.001, "mm", 1.0), (1, None, 1.0), (1, "furlong", None),
     (0, "um", None), (float("nan"), "um", None), ("x", "um", None), (-1, "um", None)],
)
def test_to_micrometres(value, unit, expected):
    assert to_micrometres(value, unit) == (pytest.approx(expected) if expected else None)
