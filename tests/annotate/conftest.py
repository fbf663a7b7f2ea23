"""Images shared by the annotate tests: 2-D, 2-D OME, 3-D and a 2-channel ImageJ hyperstack."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(folder / "b.ome.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(folder / "v.tif", np.zeros((5, 20, 30), np.uint16))
    tifffile.imwrite(folder / "mc.tif", np.zeros((4, 2, 20, 30), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    return folder
