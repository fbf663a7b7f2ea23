"""ObjectnessConfig and objectness_for_image."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError, PointsError
from pointseg_cli.io.points import PointTable
from pointseg_cli.objectness import ObjectnessConfig, compute_objectness, objectness_for_image, prepare_image
from pointseg_cli.preprocess.normalize import Normalization, normalize_image


def _table(coords: list[tuple[float, float, float]], classes: list[str], names=("a", "b")) -> PointTable:
    return PointTable(image=np.array(["img"] * len(coords)), coords=np.array(coords, float),
                      class_name=np.array(classes), class_names=tuple(names))


def test_config_round_trip_and_validation() -> None:
    cfg = ObjectnessConfig(w=5.0, mode="geodesic", spacing=[2, 1, 1], diffusion_iterations=3,
                           normalization=Normalization(low=2.0, high=98.0))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert ObjectnessConfig.from_dict(data) == cfg
    assert data["cost"] == "seed" and ObjectnessConfig().cost == "seed"
    parent = ObjectnessConfig(cost="parent")
    assert ObjectnessConfig.from_dict(json.loads(json.dumps(parent.to_dict()))) == parent
    del data["cost"]  # a sidecar written before the option existed used the parent cost
    assert ObjectnessConfig.from_dict(data).cost == "parent"
    for kwargs, match in [({"w": 0.0}, "positive"), ({"mode": "x"}, "paper, geodesic"), ({"cost": "x"}, "seed, parent"),
                          ({"connectivity": 4}, "1, 2 or 3"), ({"stain_method": "x"}, "vahadane, macenko"),
                          ({"diffusion_iterations": -1}, ">= 0")]:
        with pytest.raises(ConfigError, match=match):
            ObjectnessConfig(**kwargs)


def test_pipeline_normalises_then_grows(rng: np.random.Generator) -> None:
    image = rng.integers(0, 4000, (12, 10)).astype(np.uint16)
    pts = _table([(math.nan, 2, 3), (math.nan, 9, 7)], ["b", "a"])
    res = objectness_for_image(image, pts, config=ObjectnessConfig(w=2.0))
    want = compute_objectness(normalize_image(image, Normalization()), [[2, 3], [9, 7]], [2, 1], w=2.0)
    np.testing.assert_array_equal(res.regions, want.regions)
    np.testing.assert_array_equal(res.distance, want.distance)
    res_p = objectness_for_image(image, pts, config=ObjectnessConfig(w=2.0, cost="parent"))
    want_p = compute_objectness(normalize_image(image, Normalization()), [[2, 3], [9, 7]], [2, 1], w=2.0,
                                cost="parent")
    np.testing.assert_array_equal(res_p.distance, want_p.distance)
    assert not np.array_equal(res_p.distance, res.distance)
    assert res.soft_labels(2)[2][2, 3] == 1.0  # seed of class "b" (id 2)


def test_pipeline_3d_rgb_and_point_dims(rng: np.random.Generator) -> None:
    vol = rng.random((4, 6, 5, 3))
    pts = _table([(1, 2, 2)], ["a"])
    res = objectness_for_image(vol, pts, config=ObjectnessConfig(equalize=True, diffusion_iterations=2),
                               channel_axis=-1)
    assert res.regions.shape == (4, 6, 5) and (res.regions == 1).all()
    with pytest.raises(PointsError, match="z coordinate"):
        objectness_for_image(vol[0], pts, config=ObjectnessConfig(), channel_axis=-1)


def test_stain_needs_target(rng: np.random.Generator) -> None:
    with pytest.raises(ConfigError, match="needs a target image"):
        prepare_image(rng.integers(0, 255, (8, 8, 3)), ObjectnessConfig(stain_method="macenko"), channel_axis=-1)


def test_run_objectness_grows_with_the_files_voxel_size_unless_switched_off(tmp_path, monkeypatch) -> None:
    import pointseg_cli.objectness.pipeline as pipeline
    from pointseg_cli.io.ome import write_ome_tiff
    from pointseg_cli.objectness.batch import run_objectness

    vol = np.zeros((6, 20, 20), np.uint16)
    vol[2:4, 8:12, 8:12] = 500
    write_ome_tiff(tmp_path / "v.tif", vol, axes="ZYX", voxel_size=(0.5, 0.1, 0.1))
    pts = PointTable(image=np.array(["v"]), coords=np.array([[3.0, 10.0, 10.0]]), class_name=np.array(["g"]),
                     class_names=("g",))
    seen = []
    grow = pipeline.compute_objectness
    monkeypatch.setattr(pipeline, "compute_objectness", lambda *a, **kw: seen.append(kw["spacing"]) or grow(*a, **kw))
    run_objectness(pts, [tmp_path / "v.tif"], tmp_path / "a", config=ObjectnessConfig())
    run_objectness(pts, [tmp_path / "v.tif"], tmp_path / "b", config=ObjectnessConfig(voxel_spacing=False))
    run_objectness(pts, [tmp_path / "v.tif"], tmp_path / "c", config=ObjectnessConfig(spacing=(1.0, 1.0, 1.0)))
    assert seen == [(0.5, 0.1, 0.1), None, (1.0, 1.0, 1.0)]
