"""`pointseg segment` writes object instances and their table next to the class map."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from pointseg_cli.cli.app import app
from pointseg_cli.model.metadata import read_model_metadata


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from typer.testing import CliRunner

    folder = tmp_path_factory.mktemp("demo")
    args = ["demo-data", str(folder), "--kind", "3d-nuclei", "--n", "1", "--size", "24x96x96", "--seed", "3"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return folder / "nuclei3d_000.tif"


def _matched(truth: np.ndarray, pred: np.ndarray) -> int:
    """Objects of ``truth`` matched by one of ``pred`` at IoU > 0.5 (such matches are unique)."""
    t, p = truth.ravel().astype(np.int64), pred.ravel().astype(np.int64)
    both = (t > 0) & (p > 0)
    pairs, inter = np.unique(np.stack([t[both], p[both]]), axis=1, return_counts=True)
    union = np.bincount(t)[pairs[0]] + np.bincount(p)[pairs[1]] - inter
    return int(np.sum(inter / union > 0.5))


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_default_model_writes_labels_instances_and_objects(runner, demo, tmp_path) -> None:
    out = tmp_path / "seg"
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["nuclei3d_000.instances.tif", "nuclei3d_000.labels.tif", "nuclei3d_000.objects.csv"]
    ids = tifffile.imread(out / "nuclei3d_000.instances.tif")
    assert ids.dtype == np.uint32 and ids.max() >= 1
    table = (out / "nuclei3d_000.objects.csv").read_text().splitlines()
    assert len(table) == int(ids.max()) + 1 and table[0].startswith("id,class,z,y,x,")
    # the default model has a centre output: its peaks split touching nuclei that connected
    # components of the same class map keep together
    comp = tmp_path / "comp"
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(comp), "--instances", "components"])
    assert res.exit_code == 0, res.output
    truth = tifffile.imread(demo.with_name("nuclei3d_000.masks.tif"))
    assert _matched(truth, ids) > _matched(truth, tifffile.imread(comp / "nuclei3d_000.instances.tif"))
    # a second run skips the input: all its outputs, instances included, exist
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(out)], terminal_width=200)
    assert res.exit_code == 0 and "skipped" in res.output


def test_instances_none_writes_no_instance_files(runner, demo, tmp_path) -> None:
    out = tmp_path / "seg"
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(out), "--instances", "none"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["nuclei3d_000.labels.tif"]


def test_centers_with_a_model_without_centre_output_exit_2_before_any_work(runner, demo, tmp_path) -> None:
    out = tmp_path / "seg"
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(out), "--instances", "centers", "--model",
                              "test-3d"], terminal_width=300)  # fmt: skip
    assert res.exit_code == 2
    errors = [line for line in res.output.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "centre output" in errors[0] and "distance, components, none" in errors[0]
    assert not out.exists()


def test_bad_instance_method_exit_2(runner, demo, tmp_path) -> None:
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(tmp_path / "s"), "--instances", "blobs"])
    assert res.exit_code == 2 and "instance method must be one of" in res.output


@pytest.mark.parametrize(("flag", "value"), [("--min-distance", "-2"), ("--peak-threshold", "nan")])
def test_bad_marker_setting_exit_2_before_any_work(runner, demo, tmp_path, flag, value) -> None:
    out = tmp_path / "s"
    res = runner.invoke(app, ["segment", str(demo), "--out-dir", str(out), flag, value], terminal_width=300)
    assert res.exit_code == 2 and "must be a finite number >= 0" in res.output and not out.exists()


def test_model_with_centre_head_runs_the_centres_path_end_to_end(runner, tmp_path, caplog) -> None:
    from pointseg_cli.model import build_model
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, classes=("nucleus",), crop=(16, 16, 16),
                      losses=("pce", "obj", "center"))
    torch.manual_seed(0)
    run = tmp_path / "run"
    run.mkdir()
    cfg.to_json(run / "config.json")
    save_checkpoint(run / "best.pt", model=build_model(cfg).eval(), config=cfg)
    onnx = tmp_path / "model.onnx"
    res = runner.invoke(app, ["export", str(run), "--out", str(onnx)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert read_model_metadata(onnx).has_centers
    vol = tmp_path / "in" / "vol.tif"
    vol.parent.mkdir()
    rng = np.random.default_rng(0)
    tifffile.imwrite(vol, rng.random((20, 24, 28)).astype(np.float32))
    tifffile.imwrite(vol.with_name("vol2.tif"), rng.random((20, 24, 28)).astype(np.float32))
    out = tmp_path / "seg"
    res = runner.invoke(app, ["segment", str(vol), "--out-dir", str(out), "--model", str(onnx),
                              "--instances", "centers", "--preview"], terminal_width=300)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["vol.instances.tif", "vol.labels.tif", "vol.objects.csv",
                                                     "vol.preview.png"]
    ids = tifffile.imread(out / "vol.instances.tif")
    assert ids.dtype == np.uint32 and ids.shape == (20, 24, 28)
    labels = tifffile.imread(out / "vol.labels.tif")
    np.testing.assert_array_equal(ids > 0, labels > 0)  # every object voxel gets an id, background none
    assert _leftovers(out) == [] and _leftovers(vol.parent) == []
    # auto picks the centres for this model and says so, once per model
    caplog.clear()
    with caplog.at_level("INFO", logger="pointseg_cli.infer.cache"):
        res = runner.invoke(app, ["segment", str(vol), str(vol.with_name("vol2.tif")), "--out-dir",
                                  str(tmp_path / "auto"), "--model", str(onnx)])
    assert res.exit_code == 0, res.output
    said = [r.getMessage() for r in caplog.records if "instances:" in r.getMessage()]
    assert said == ["instances: method 'centers' (model model.onnx has a centre output)"]
