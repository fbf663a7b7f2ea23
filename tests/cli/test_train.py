"""`pointseg train` through the CLI: a tiny run, and bad inputs -> exit 2 with one clear line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import write_tiff
from tests.train.synthetic import make_dataset

TINY = ["--encoder", "resnet18", "--base-filters", "4", "--crop", "32,32", "-b", "2", "--device", "cpu"]


@pytest.fixture
def data(tmp_path):
    make_dataset(tmp_path, n_images=2, shape=(40, 40), n_objects=3, radius=4)
    return tmp_path


def _train(runner, data, *extra):
    args = ["train", str(data / "points.csv"), str(data / "images"), "--out", str(data / "run"), *TINY, *extra]
    return runner.invoke(app, args)


def test_help_has_example(runner) -> None:
    res = runner.invoke(app, ["train", "--help"])
    assert res.exit_code == 0 and "Example" in res.output and "pointseg train " in res.output


def test_tiny_run_writes_run_dir_and_summary(runner, data) -> None:
    res = _train(runner, data, "--epochs", "1", "--steps-per-epoch", "2", "--val-masks", str(data / "masks"),
                 "--losses", "pce,obj", "--lambdas", "1,2,1", "--beta", "1,0.25")
    assert res.exit_code == 0, res.output
    assert "best" in res.output and "val_miou" in res.output
    cfg = json.loads((data / "run" / "config.json").read_text())
    assert cfg["arch"] == "fpn" and cfg["losses"] == ["pce", "obj"] and cfg["lambdas"] == [1.0, 2.0, 1.0]
    assert (cfg["beta_bg"], cfg["beta_obj"], cfg["classes"]) == (1.0, 0.25, ["cell"])
    assert (data / "run" / "best.pt").is_file()
    # --resume with more epochs continues from last.pt using the saved settings
    res = runner.invoke(app, ["train", str(data / "points.csv"), str(data / "images"), "--out",
                              str(data / "run"), "--resume", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    assert "4 / 2" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--losses", "img,obj"], "losses must be pce"),
        (["--center-target", "blob"], "center target must be one of adaptive, fixed"),
        (["--objectness", "nowhere"], "--objectness must be paper, gauss or an existing folder"),
        (["--crop", "64,64"], "is larger than image"),
        (["--crop", "30,30"], "multiple of 32"),
        (["--arch", "unet3d"], "trains on 3-D images; the images are 2-D"),
        (["--lambdas", "1,x,1"], "--lambdas must be numbers"),
        (["--device", "tpu"], "device must be one of"),
        (["--val-masks", "/no/such/dir"], "--val-masks folder"),
        (["--losses", "pce", "--bg-weight", "0"], "label no pixel as background"),
    ],
)
def test_bad_options_exit_2(runner, data, extra, message) -> None:
    res = _train(runner, data, "--max-steps", "1", *extra)
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not (data / "run" / "last.pt").exists()


def test_bad_data_exit_2(runner, data) -> None:
    (data / "empty.csv").write_text("image,z,y,x,class\n")
    res = runner.invoke(app, ["train", str(data / "empty.csv"), str(data / "images"), "--out", str(data / "r")])
    assert res.exit_code == 2 and "no points" in res.output
    lines = (data / "points.csv").read_text().splitlines()
    (data / "ghost.csv").write_text("\n".join(lines + ["ghost,,3,3,cell"]) + "\n")
    res = runner.invoke(app, ["train", str(data / "ghost.csv"), str(data / "images"), "--out", str(data / "r"),
                              *TINY])
    assert res.exit_code == 2 and "not found among" in res.output and "ghost" in res.output
    write_tiff(data / "masks" / "img0.labels.tif", np.zeros((20, 40), np.uint8), axes="YX")
    res = _train(runner, data, "--masks", str(data / "masks"), "--max-steps", "1")
    assert res.exit_code == 2 and "has shape (20, 40)" in res.output
    res = runner.invoke(app, ["train", str(data / "nope.csv"), str(data / "images"), "--out", str(data / "r")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_progress_monitor_shows_stages_and_loss_terms() -> None:
    from pointseg_cli.cli.train import _Monitor
    from pointseg_cli.train.loop import StepInfo

    with _Monitor(True) as mon:
        mon.stage("preparing images", 1, 2)
        mon.stage("training", 1, 3)  # the training bar comes from the step callback instead
        mon(StepInfo(1, 3, 1, 0.5, {"point": 0.2, "obj": 0.3}, 1e-3, 2.0))
        assert list(mon.stages) == ["preparing images"]
        info = mon.progress.tasks[-1].fields["info"]
    assert "point 0.200" in info and "lr 1.0e-03" in info and "2.00 it/s" in info
    with _Monitor(False) as off:  # not a TTY / --quiet: nothing is drawn
        off.stage("preparing images", 1, 2)
        off(StepInfo(1, 3, 1, 0.5, {}, 1e-3, 2.0))
        assert off.progress is None


@pytest.fixture
def he(tmp_path):
    from tests.train.he_synthetic import make_he_dataset

    make_he_dataset(tmp_path, shape=(64, 64))
    return tmp_path


def test_stain_normalize_is_recorded_in_config_and_onnx_metadata(runner, he) -> None:
    from pointseg_cli.model.metadata import read_model_metadata
    from pointseg_cli.preprocess.stain import reference_from_file

    res = _train(runner, he, "--max-steps", "1", "--val-fraction", "0", "--stain-normalize", str(he / "target.tif"),
                 "--stain-method", "macenko")
    assert res.exit_code == 0, res.output
    assert "normalised to target.tif (macenko)" in res.output
    stain = json.loads((he / "run" / "config.json").read_text())["normalization"]["stain"]
    assert stain == reference_from_file(he / "target.tif", method="macenko")
    res = runner.invoke(app, ["export", str(he / "run"), "--out", str(he / "he.onnx")])
    assert res.exit_code == 0, res.output
    meta = read_model_metadata(he / "he.onnx")
    assert meta.channels == 3 and meta.normalization["stain"] == stain
    res = runner.invoke(app, ["segment", str(he / "images" / "he0.tif"), "--model", str(he / "he.onnx"),
                              "--out-dir", str(he / "seg")])
    assert res.exit_code == 0, res.output
    assert (he / "seg" / "he0.labels.tif").is_file()
    # --resume keeps the saved reference; the same target again is accepted, another one is not
    res = runner.invoke(app, ["train", str(he / "points.csv"), str(he / "images"), "--out", str(he / "run"),
                              "--resume", "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["train", str(he / "points.csv"), str(he / "images"), "--out", str(he / "run"),
                              "--resume", "--max-steps", "3", "--stain-normalize", str(he / "images" / "he0.tif")])
    assert res.exit_code == 2 and "normalization (saved" in res.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--stain-normalize", "{gray}"], "stain target 'img0.tif' must be a 2-D RGB image (Y, X, 3); got YX (40, 40)"),
        (["--stain-normalize", "{missing}"], "does not exist"),
        (["--stain-normalize", "{rgb}", "--stain-method", "reinhard"], "stain method must be one of"),
        (["--stain-method", "macenko"], "--stain-method macenko needs --stain-normalize"),
    ],
)
def test_bad_stain_options_exit_2_without_run_dir(runner, he, extra, message) -> None:
    paths = {"{gray}": str(he / "gray" / "images" / "img0.tif"), "{missing}": str(he / "none.tif"),
             "{rgb}": str(he / "target.tif")}
    make_dataset(he / "gray", n_images=1, shape=(40, 40), n_objects=2, radius=4)
    res = _train(runner, he, "--max-steps", "1", *[paths.get(a, a) for a in extra])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert len(res.output.strip().splitlines()) == 1
    assert not (he / "run").exists()


def test_stain_normalize_on_grayscale_images_exit_2_without_run_dir(runner, he) -> None:
    gray = he / "gray"
    make_dataset(gray, n_images=2, shape=(40, 40), n_objects=3, radius=4)
    res = _train(runner, gray, "--max-steps", "1", "--stain-normalize", str(he / "target.tif"))
    assert res.exit_code == 2, res.output
    assert "needs 2-D RGB training images (3 channels); the images are 2-D with 1 channel(s)" in res.output
    assert not (gray / "run").exists()


def test_without_out_a_new_run_folder_under_runs_is_created_and_printed(runner, data, monkeypatch) -> None:
    monkeypatch.chdir(data)
    args = ["train", "points.csv", "images", *TINY, "--max-steps", "1", "--val-fraction", "0"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    runs = sorted(p for p in (data / "runs").iterdir())
    assert len(runs) == 2 and all(p.name.endswith("-fpn") or "-fpn-" in p.name for p in runs)
    assert all((p / "best.pt").is_file() for p in runs)
    printed = " ".join((first.output + second.output).split())
    assert all(f"runs/{p.name}" in printed for p in runs)


def test_resume_without_out_exit_2(runner, data, monkeypatch) -> None:
    monkeypatch.chdir(data)
    res = runner.invoke(app, ["train", "points.csv", "images", *TINY, "--resume"])
    assert res.exit_code == 2 and "--resume continues an existing run" in res.output
    assert not (data / "runs").exists()


def test_failed_run_leaves_no_new_run_folder(runner, data, monkeypatch) -> None:
    monkeypatch.chdir(data)
    res = runner.invoke(app, ["train", "points.csv", "images", *TINY, "--crop", "64,64"])
    assert res.exit_code == 2 and "is larger than image" in res.output
    assert list((data / "runs").iterdir()) == []


def test_cpu_run_takes_cpu_defaults_for_unset_options_only(runner, tmp_path) -> None:
    make_dataset(tmp_path, n_images=2, shape=(64, 64), n_objects=3, radius=4)
    res = runner.invoke(app, ["train", str(tmp_path / "points.csv"), str(tmp_path / "images"), "--out",
                              str(tmp_path / "run"), "--crop", "64,64", "--device", "cpu", "--max-steps", "1",
                              "--val-fraction", "0"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["encoder"], cfg["base_filters"], cfg["batch_size"]) == ("resnet18", 32, 8)
    assert cfg["crop"] == [64, 64] and cfg["device"] == "cpu"  # the user's crop is kept
    assert "CPU defaults" in res.output and "crop" not in res.output.split("CPU defaults")[1].splitlines()[0]


def test_off_a_terminal_eta_and_one_line_per_epoch(runner, data) -> None:
    res = _train(runner, data, "--epochs", "2", "--steps-per-epoch", "2", "--val-masks", str(data / "masks"))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if ln.startswith("epoch ")]
    assert [ln.split(":")[0] for ln in lines] == ["epoch 1/2 step 2/4", "epoch 2/2 step 4/4"]
    assert all("loss" in ln and "point" in ln and "val mIoU" in ln and "background IoU" in ln for ln in lines)
    assert sum(ln.startswith("ETA ") for ln in res.output.splitlines()) == 1
    quiet = runner.invoke(app, ["-q", "train", str(data / "points.csv"), str(data / "images"), "--out",
                                str(data / "run2"), *TINY, "--max-steps", "4"])
    assert quiet.exit_code == 0 and quiet.output == ""


def test_long_run_warning(runner, data, monkeypatch) -> None:
    from pointseg_cli.train import loop

    monkeypatch.setattr(loop, "LONG_RUN_SECONDS", 0.0)
    res = _train(runner, data, "--max-steps", "4", "--val-fraction", "0")
    assert res.exit_code == 0, res.output
    assert "this run would take about" in " ".join(res.output.split())
    monkeypatch.setattr(loop, "LONG_RUN_SECONDS", 1e9)
    res = runner.invoke(app, ["train", str(data / "points.csv"), str(data / "images"), "--out",
                              str(data / "run2"), *TINY, "--max-steps", "4", "--val-fraction", "0"])
    assert res.exit_code == 0 and "this run would take" not in res.output
