"""The SIM preprocessing in training: voxel size and diffusion reach the growing, equalisation the network."""

from __future__ import annotations

import numpy as np
import pytest

import pointseg_cli.objectness.pipeline as pipeline
from pointseg_cli.io.images import read_image
from pointseg_cli.io.ome import write_ome_tiff
from pointseg_cli.io.points import read_points_csv
from pointseg_cli.preprocess.equalize import equalize
from pointseg_cli.preprocess.normalize import Normalization, normalize_image
from pointseg_cli.train.config import TrainConfig, default_normalization
from pointseg_cli.train.data import prepare_data

from .synthetic import make_dataset

VOXEL = (0.3, 0.1, 0.1)


@pytest.fixture
def vol(tmp_path):
    """Two 3-D volumes re-written as OME-TIFF with an anisotropic voxel size."""
    make_dataset(tmp_path, n_images=2, shape=(16, 32, 32), n_objects=3, radius=4)
    for path in sorted((tmp_path / "images").glob("*.tif")):
        write_ome_tiff(path, read_image(path), axes="ZYX", voxel_size=VOXEL)
    return tmp_path


@pytest.fixture
def grown(monkeypatch):
    """Record the spacing of every growing and whether diffusion ran."""
    calls: dict[str, list] = {"spacing": [], "diffusion": []}
    grow, diffuse = pipeline.compute_objectness, pipeline.anisotropic_diffusion

    def spy_grow(*args, **kw):
        calls["spacing"].append(kw.get("spacing"))
        return grow(*args, **kw)

    def spy_diffuse(*args, **kw):
        calls["diffusion"].append(kw["iterations"])
        return diffuse(*args, **kw)

    monkeypatch.setattr(pipeline, "compute_objectness", spy_grow)
    monkeypatch.setattr(pipeline, "anisotropic_diffusion", spy_diffuse)
    return calls


def _cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"arch": "unet3d", "ndim": 3, "classes": ("cell",), "crop": (8, 16, 16),
                          "val_fraction": 0.0, **kw})


def test_voxel_size_of_the_files_is_the_growing_spacing_unless_switched_off(vol, grown) -> None:
    table = read_points_csv(vol / "points.csv")
    prepare_data(_cfg(), table, [vol / "images"], cache_dir=vol / "cache")
    assert grown["spacing"] == [VOXEL, VOXEL]
    prepare_data(_cfg(voxel_spacing=False), table, [vol / "images"], cache_dir=vol / "cache")
    assert grown["spacing"][2:] == [None, None]  # not the cached objectness of the spaced run
    assert grown["diffusion"] == []


def test_diffusion_runs_before_the_objectness_only(vol, grown) -> None:
    table = read_points_csv(vol / "points.csv")
    plain = prepare_data(_cfg(), table, [vol / "images"])
    diffused = prepare_data(_cfg(diffusion_iterations=3, diffusion_kappa=0.2), table, [vol / "images"])
    assert grown["diffusion"] == [3, 3]
    # the network input is the same; the soft labels come from the smoothed image
    np.testing.assert_array_equal(plain.train[0].image, diffused.train[0].image)
    assert not np.array_equal(plain.train[0].soft, diffused.train[0].soft)


def test_equalize_reaches_the_network_input(vol) -> None:
    table = read_points_csv(vol / "points.csv")
    cfg = _cfg(normalization={**default_normalization(), "equalize": True})
    got = prepare_data(cfg, table, [vol / "images"]).train[0].image[0]
    raw = read_image(vol / "images" / "img0.tif")
    np.testing.assert_allclose(got, equalize(normalize_image(raw, Normalization())), atol=1e-6)


def test_bad_diffusion_settings() -> None:
    from pointseg_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="diffusion_iterations"):
        _cfg(diffusion_iterations=-1)
    with pytest.raises(ConfigError, match="diffusion_kappa"):
        _cfg(diffusion_kappa=0)
    with pytest.raises(ConfigError, match="equalize"):
        _cfg(normalization={"method": "percentile", "equalize": 1})
