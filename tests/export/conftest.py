"""A real (tiny, untrained) training run directory, made with the training code's own checkpoint writer."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def run_dir(tmp_path):
    from pointseg_cli.model import build_model
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, classes=("nucleus", "cell"), crop=(16, 16, 16),
                      normalization={"method": "percentile", "low": 2.0, "high": 99.0, "per_channel": True})
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    run = tmp_path / "run"
    run.mkdir()
    cfg.to_json(run / "config.json")
    save_checkpoint(run / "best.pt", model=model, config=cfg)
    return run
