"""Shared fixtures. Tests build their own small data; none reads ../shared at run time."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def inputs(tmp_path, rng):
    """A folder with two small 2-D images: ``a.tif`` uint8 (90, 110) and ``b.tif`` uint16 (70, 60)."""
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", (rng.random((90, 110)) * 255).astype(np.uint8))
    tifffile.imwrite(folder / "b.tif", (rng.random((70, 60)) * 4000).astype(np.uint16))
    return folder
