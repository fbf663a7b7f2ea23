"""Network settings (NetConfig) and building networks from them."""

from __future__ import annotations

import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.model import NetConfig, build_model, input_kind
from pointseg_cli.nets import FPN, UNet3D


def test_build_model_from_dict() -> None:
    net = build_model({"arch": "unet3d", "classes": ["a", "b"], "channels": 1, "base_filters": 4})
    assert isinstance(net, UNet3D) and net.head.out_channels == 3
    net = build_model({"arch": "fpn", "classes": ["a"], "channels": 3, "base_filters": 4, "encoder": "resnet18"})
    assert isinstance(net, FPN) and net.head.out_channels == 2
    with pytest.raises(ConfigError, match="arch must be one of"):
        build_model({"arch": "vit", "classes": ["a"], "channels": 1})


def test_net_config_from_a_training_config_and_its_dict() -> None:
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, filter_growth=2, classes=("x", "y"), crop=(16, 16, 16))
    net = NetConfig.from_mapping(cfg)
    assert net == NetConfig.from_mapping(cfg.to_dict())  # extra training keys are ignored
    assert (net.arch, net.base_filters, net.filter_growth, net.classes) == ("unet3d", 2, 2, ("x", "y"))
    assert (net.ndim, net.divisor, net.n_outputs) == (3, 8, 3)
    assert NetConfig().divisor == 32 and NetConfig().ndim == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"encoder": "resnet101"}, "encoder must be one of resnet18, resnet34, resnet50; got 'resnet101'"),
    ({"channels": 0}, "channels must be a positive integer; got 0"),
    ({"filter_growth": 3}, "filter_growth must be 1 or 2; got 3"),
    ({"classes": ("a", "a")}, "classes must be a non-empty list of distinct names"),
    ({"classes": ()}, "classes must be a non-empty list"),
])
def test_net_config_names_expected_and_received(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        NetConfig(**kwargs)


def test_input_kind() -> None:
    assert [input_kind(2, 1), input_kind(2, 3), input_kind(3, 1), input_kind(3, 2)] == ["2d-gray", "2d-rgb", "3d", "3d"]
