"""Checkpoints: save, load_model from a run dir or a file, clear errors."""

from __future__ import annotations

import pytest
import torch

from pointseg_cli.errors import ModelError
from pointseg_cli.nets import build_model
from pointseg_cli.train.checkpoint import load_model, save_checkpoint
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
