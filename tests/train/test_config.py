"""TrainConfig validation and JSON round trip."""

from __future__ import annotations

import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.train.config import TrainConfig


def test_defaults_follow_paper() -> None:
    c2 = TrainConfig()
    assert c2.crop == (128, 128) and c2.batch_size == 64
    c3 = TrainConfig(arch="unet3d", ndim=3)
    assert c3.crop == (32, 64, 64) and c3.batch_size == 20 and c3.divisor == 8
    assert c2.beta_bg > c2.beta_obj


def test_json_round_trip(tmp_path) -> None:
    c = TrainConfig(classes=("a", "b"), losses=("obj", "pce"), crop=(64, 96), val_images=("x",))
    assert c.losses == ("pce", "obj")  # canonical order
    path = c.to_json(tmp_path / "config.json")
    assert TrainConfig.from_json(path) == c


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"arch": "vit"}, "arch must be one of fpn, unet3d; got 'vit'"),
        ({"arch": "unet3d"}, "trains on 3-D images; the images are 2-D"),
        ({"crop": (100, 128)}, "multiple of 32"),
        ({"losses": ("img",)}, "losses must be pce"),
        ({"losses": ("pce", "foo")}, "losses must be pce"),
        ({"lambdas": (1.0, -1.0, 1.0)}, "lambdas"),
        ({"classes": ()}, "classes"),
        ({"objectness": "dir"}, "objectness_dir"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"batch_size": 0}, "batch_size"),
        ({"device": "tpu"}, "device must be one of"),
        ({"center_target": "blob"}, "center target must be one of adaptive, fixed"),
        ({"center_weight": -1.0}, "center_weight"),
        ({"center_sigma": 0.0}, "center_sigma"),
    ],
)
def test_invalid_values_raise_config_error(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**kw)


def test_unknown_key_rejected() -> None:
    with pytest.raises(ConfigError, match="unknown training config keys"):
        TrainConfig.from_dict({"arch": "fpn", "bogus": 1})


def test_objectness_cost_defaults_follow_the_objectness_engine() -> None:
    from pointseg_cli.objectness import DEFAULT_W, ObjectnessConfig

    cfg = TrainConfig()
    assert cfg.objectness_cost == ObjectnessConfig().cost == "seed"
    assert cfg.w == DEFAULT_W
    # a config saved before the option existed was trained with the parent cost
    old = {k: v for k, v in cfg.to_dict().items() if k != "objectness_cost"}
    assert TrainConfig.from_dict(old).objectness_cost == "parent"
    with pytest.raises(ConfigError, match="objectness cost must be one of seed, parent"):
        TrainConfig(objectness_cost="mean")


def test_stain_entry_is_validated_and_needs_2d_rgb() -> None:
    ref = {"method": "macenko", "matrix": [[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]], "max": [1, 2]}
    cfg = TrainConfig(channels=3, normalization={"method": "percentile", "stain": ref})
    assert cfg.normalization["stain"]["max"] == [1.0, 2.0]
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"needs 2-D RGB training images \(3 channels\); the images are 2-D with 1"):
        TrainConfig(channels=1, normalization={"method": "percentile", "stain": ref})
    with pytest.raises(ConfigError, match="must be a dict with method, matrix and max"):
        TrainConfig(channels=3, normalization={"method": "percentile", "stain": {"method": "macenko"}})


def test_boundary_background_weight_defaults_per_dimensionality() -> None:
    assert TrainConfig(classes=("c",)).bg_weight == 0.1  # the paper's 2D value
    assert TrainConfig(arch="unet3d", ndim=3, classes=("c",)).bg_weight == 0.0
    assert TrainConfig(arch="unet3d", ndim=3, classes=("c",), bg_weight=0.02).bg_weight == 0.02


def test_3d_points_only_runs_keep_a_background_label() -> None:
    from pointseg_cli.train.config import check_background_label

    # without obj and masks the boundary background is the only background label: not 0 by default
    pce = TrainConfig(arch="unet3d", ndim=3, classes=("c",), losses=("pce", "img"))
    assert pce.bg_weight == 0.02
    check_background_label(pce)
    masks = TrainConfig(arch="unet3d", ndim=3, classes=("c",), losses=("pce",), supervision="masks", masks_dir="m")
    assert masks.bg_weight == 0.0
    check_background_label(masks)
    check_background_label(TrainConfig(arch="unet3d", ndim=3, classes=("c",)))  # obj labels background
    # set to 0 by hand: refused for a new run, with what was expected
    zero = TrainConfig(arch="unet3d", ndim=3, classes=("c",), losses=("pce",), bg_weight=0.0)
    expected = r"losses pce with bg_weight 0 label no pixel as background.*expected bg_weight > 0"
    with pytest.raises(ConfigError, match=expected):
        check_background_label(zero)
    with pytest.raises(ConfigError, match="label no pixel as background"):
        check_background_label(TrainConfig(classes=("c",), losses=("pce", "img"), bg_weight=0.0))
    # a saved configuration with that setting still loads (export and resume of old runs)
    assert TrainConfig.from_dict(zero.to_dict()) == zero


def test_center_loss_is_on_by_default_and_old_configs_keep_no_head() -> None:
    from pointseg_cli.model import NetConfig

    def has_center_head(c: TrainConfig) -> bool:
        return NetConfig.from_mapping(c).center_head

    cfg = TrainConfig()
    assert "center" in cfg.losses and has_center_head(cfg)
    # a config saved before the centre head existed: no center loss, no center_* keys
    old = {k: v for k, v in cfg.to_dict().items() if not k.startswith("center")}
    old["losses"] = ["pce", "img", "obj"]
    restored = TrainConfig.from_dict(old)
    assert restored.losses == ("pce", "img", "obj") and not has_center_head(restored)


def test_img_scale_defaults_to_crop_for_one_class_and_point_for_several(tmp_path) -> None:
    assert TrainConfig().img_scale == "crop"
    assert TrainConfig(classes=("a", "b", "c")).img_scale == "point"
    assert TrainConfig(classes=("a", "b"), img_scale="crop").img_scale == "crop"  # an explicit choice stays
    # the resolved value is saved, so a run resumes with the weighting it was trained with
    path = TrainConfig(classes=("a", "b")).to_json(tmp_path / "config.json")
    assert TrainConfig.from_json(path).img_scale == "point"
    # configs saved before the option existed weighted L_img per crop, whatever the classes
    old = TrainConfig(classes=("a", "b")).to_dict()
    del old["img_scale"]
    assert TrainConfig.from_dict(old).img_scale == "crop"
