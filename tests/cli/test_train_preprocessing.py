"""`pointseg train --equalize / --diffuse / --no-voxel-spacing`: recorded in config.json and the ONNX model."""

from __future__ import annotations

import json

from pointseg_cli.cli.app import app
from pointseg_cli.model.metadata import read_model_metadata
from tests.train.synthetic import make_dataset

TINY = ["--encoder", "resnet18", "--base-filters", "4", "--crop", "32,32", "-b", "2", "--device", "cpu",
        "--max-steps", "1", "--val-fraction", "0"]


def test_equalize_and_diffusion_are_recorded_and_segment_needs_no_flag(runner, tmp_path) -> None:
    make_dataset(tmp_path, n_images=2, shape=(40, 40), n_objects=3, radius=4)
    run = tmp_path / "run"
    res = runner.invoke(app, ["train", str(tmp_path / "points.csv"), str(tmp_path / "images"), "--out", str(run),
                              *TINY, "--equalize", "--diffuse", "3", "--kappa", "0.2", "--no-voxel-spacing"])
    assert res.exit_code == 0, res.output
    assert "histogram-equalised" in res.output
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["normalization"]["equalize"] is True and cfg["normalization"]["method"] == "percentile"
    assert (cfg["diffusion_iterations"], cfg["diffusion_kappa"], cfg["voxel_spacing"]) == (3, 0.2, False)
    res = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "m.onnx")])
    assert res.exit_code == 0, res.output
    assert read_model_metadata(tmp_path / "m.onnx").normalization["equalize"] is True
    res = runner.invoke(app, ["segment", str(tmp_path / "images" / "img0.tif"), "--model", str(tmp_path / "m.onnx"),
                              "--out-dir", str(tmp_path / "seg")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "seg" / "img0.labels.tif").is_file()


def test_negative_diffusion_exit_2(runner, tmp_path) -> None:
    make_dataset(tmp_path, n_images=2, shape=(40, 40), n_objects=3, radius=4)
    res = runner.invoke(app, ["train", str(tmp_path / "points.csv"), str(tmp_path / "images"), "--out",
                              str(tmp_path / "run"), *TINY, "--diffuse", "-1"])
    assert res.exit_code == 2 and "diffusion_iterations must be an integer >= 0" in res.output
