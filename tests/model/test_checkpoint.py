"""Checkpoints: save, load_model from a run dir or a file, clear errors."""

from __future__ import annotations

import pytest
import torch

from pointseg_cli.errors import ModelError
from pointseg_cli.model import build_model
from pointseg_cli.model.checkpoint import load_model
from pointseg_cli.train.checkpoint import save_checkpoint
from pointseg_cli.train.config import TrainConfig


def test_load_model_restores_weights_and_fields(tmp_path) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(
        arch="fpn", encoder="resnet18", base_filters=4, classes=("nucleus", "cyto"), channels=3, crop=(64, 64)
    )
    net = build_model(cfg).eval()
    save_checkpoint(tmp_path / "best.pt", model=net, config=cfg, step=3)
    loaded = load_model(tmp_path)
    assert loaded.classes == ["nucleus", "cyto"]
    assert (loaded.ndim, loaded.channels, loaded.tile, loaded.divisor) == (2, 3, (64, 64), 32)
    assert loaded.normalization["method"] == "percentile"
    assert not loaded.model.training
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(x))


def test_load_model_errors(tmp_path) -> None:
    with pytest.raises(ModelError, match="has no best.pt or last.pt"):
        load_model(tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read checkpoint"):
        load_model(tmp_path / "junk.pt")


def test_checkpoint_with_a_broken_config_is_a_model_error(tmp_path) -> None:
    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, crop=(16, 16, 16))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "best.pt", model=build_model(cfg), config=cfg)
    data = torch.load(tmp_path / "best.pt", weights_only=True)
    for change, message in (({"crop": None}, "crop must be 3 positive multiples of 8; got None"),
                            ({"ndim": 2}, "arch 'unet3d' is 3-D but its config says ndim 2"),
                            ({"channels": 0}, "invalid network config: channels must be a positive integer")):
        torch.save({**data, "config": {**data["config"], **change}}, tmp_path / "bad.pt")
        with pytest.raises(ModelError, match=message):
            load_model(tmp_path / "bad.pt")
