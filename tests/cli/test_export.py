from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from pointseg_cli.cli.app import app
from pointseg_cli.model.metadata import read_model_metadata


@pytest.fixture
def run_dir(tmp_path):
    from pointseg_cli.model import build_model
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, classes=("nucleus",), crop=(16, 16, 16))
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    cfg.to_json(run / "config.json")
    save_checkpoint(run / "best.pt", model=build_model(cfg).eval(), config=cfg)
    return run


def test_export_then_segment(runner, run_dir, tmp_path):
    out = tmp_path / "model.onnx"
    res = runner.invoke(app, ["export", str(run_dir), "--out", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "parity vs PyTorch: max abs error" in res.output and out.is_file()
    assert read_model_metadata(out).classes == ("nucleus",)
    vol = tmp_path / "vol.tif"
    tifffile.imwrite(vol, np.random.default_rng(0).random((10, 20, 24)).astype(np.float32))
    res = runner.invoke(app, ["segment", str(vol), "--out-dir", str(tmp_path / "seg"), "--model", str(out)],
                        terminal_width=200)
    assert res.exit_code == 0, res.output
    # the run dir itself also works as --model (PyTorch predictor)
    res = runner.invoke(app, ["segment", str(vol), "--out-dir", str(tmp_path / "seg2"), "--model", str(run_dir)],
                        terminal_width=200)
    assert res.exit_code == 0 and "torch-cpu" in res.output, res.output


def test_parity_failure_exit_2_no_file(runner, run_dir, tmp_path):
    out = tmp_path / "model.onnx"
    res = runner.invoke(app, ["export", str(run_dir), "--out", str(out), "--precision", "fp16",
                              "--tolerance", "1e-12"], terminal_width=200)
    assert res.exit_code == 2, res.output
    assert "differs from PyTorch beyond tolerance" in res.output and "Traceback" not in res.output
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["run"]


@pytest.mark.parametrize("args, message", [
    (["--precision", "int8"], "precision must be one of fp32, fp16"),
    (["--opset", "30"], "opset must be between 7 and 18"),
])
def test_bad_options_exit_2(runner, run_dir, tmp_path, args, message):
    res = runner.invoke(app, ["export", str(run_dir), "--out", str(tmp_path / "m.onnx"), *args], terminal_width=200)
    assert res.exit_code == 2 and message in res.output


def test_missing_run_dir_exit_2(runner, tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")], terminal_width=200)
    assert res.exit_code == 2 and "not found" in res.output
