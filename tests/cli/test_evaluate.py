from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from pointseg_cli.cli.app import app


def _img(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


@pytest.fixture
def folders(tmp_path):
    gt = np.zeros((10, 10), np.uint16)
    gt[0:4, 0:4] = 7
    gt[5:9, 5:9] = 3
    pred = np.zeros((10, 10), np.uint8)
    pred[0:4, 0:3] = 1
    pred[6:9, 6:9] = 1
    pred[0, 9] = 1
    _img(tmp_path / "gt" / "a.tif", np.zeros((10, 10), np.uint8))  # raw image beside its labels
    _img(tmp_path / "gt" / "a.labels.tif", gt)
    _img(tmp_path / "pred" / "a.labels.tif", pred)
    _img(tmp_path / "pred" / "a.probabilities.tif", np.zeros((2, 10, 10), np.float32))
    return tmp_path


def _run(runner, args):
    return runner.invoke(app, ["evaluate", *map(str, args)], terminal_width=200)


def test_table_and_json(runner, folders):
    out = folders / "scores.json"
    res = _run(runner, [folders / "pred", folders / "gt", "--gt-binary", "--instances", "--json", out])
    assert res.exit_code == 0, res.output
    assert "overall" in res.output and "0.636" in res.output and "0.800" in res.output  # IoU 21/33, F1 0.8
    data = json.loads(out.read_text())
    assert data["classes"] == ["background", "1"]
    assert data["overall"]["iou"]["1"] == pytest.approx(21 / 33)
    assert data["overall"]["instances"]["tp"] == 2
    assert data["images"][0]["image"] == "a"


def test_absent_class_shown_as_dash_and_null(runner, folders):
    out = folders / "s.json"
    res = _run(runner, [folders / "pred", folders / "gt", "--gt-binary", "--classes", "nucleus,mito", "--json", out])
    assert res.exit_code == 0, res.output
    assert "–" in res.output
    data = json.loads(out.read_text())
    assert data["overall"]["iou"]["mito"] is None
    assert data["overall"]["miou_objects"] == pytest.approx(21 / 33)


def test_shape_mismatch_exits_2(runner, folders):
    _img(folders / "gt" / "a.labels.tif", np.zeros((10, 12), np.uint8))
    out = folders / "s.json"
    res = _run(runner, [folders / "pred", folders / "gt", "--json", out])
    assert res.exit_code == 2
    assert "prediction 'a.labels.tif' has shape (10, 10) but ground truth 'a.labels.tif' has (10, 12)" in res.output
    assert not out.exists() and "Traceback" not in res.output


def test_no_matches_exits_2(runner, folders, tmp_path):
    _img(tmp_path / "other" / "b.labels.tif", np.zeros((10, 10), np.uint8))
    out = folders / "s.json"
    res = _run(runner, [folders / "pred", tmp_path / "other", "--json", out])
    assert res.exit_code == 2
    assert "no prediction in" in res.output and "matches a ground truth" in res.output
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--classes", "x"], "class id 7 but only 2 classes"),
        (["--instances", "--pred-instances", "blobs"], "--pred-instances must be one of auto, ids, components"),
    ],
)
def test_bad_options_exit_2(runner, folders, extra, message):
    out = folders / "s.json"
    res = _run(runner, [folders / "pred", folders / "gt", "--json", out, *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output and not out.exists()


def test_missing_input_exits_2(runner, folders):
    res = _run(runner, [folders / "nope", folders / "gt"])
    assert res.exit_code == 2 and "prediction '" in res.output and "does not exist" in res.output


def test_quiet_prints_nothing_but_writes_json(runner, folders):
    out = folders / "s.json"
    res = runner.invoke(app, ["--quiet", "evaluate", str(folders / "pred"), str(folders / "gt"), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == "" and out.exists()


def test_instances_files_scored_directly(runner, tmp_path):
    gt = np.zeros((10, 16), np.uint16)
    gt[2:6, 0:4], gt[2:6, 6:10] = 1, 2  # two touching-ish objects
    ids = np.zeros((10, 16), np.uint32)
    ids[2:6, 0:4], ids[2:6, 6:10] = 4, 8
    _img(tmp_path / "gt" / "a.tif", gt)
    _img(tmp_path / "pred" / "a.labels.tif", (ids > 0).astype(np.uint8) | np.pad(np.ones((10, 2), np.uint8),
                                                                              ((0, 0), (4, 10))))
    _img(tmp_path / "pred" / "a.instances.tif", ids)
    out = tmp_path / "s.json"
    # the class map joins both objects into one component; the instance image keeps them apart
    res = _run(runner, [tmp_path / "pred", tmp_path / "gt", "--gt-binary", "--instances", "--json", out])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["overall"]["instances"]["tp"] == 2 and data["overall"]["instances"]["ap"] == pytest.approx(1.0)
    assert data["overall"]["instances_per_class"]["1"]["tp"] == 2
    assert "panoptic quality 1.000" in res.output
    # a single x.instances.tif against its ground truth: instance ids from the file itself
    res = _run(runner, [tmp_path / "pred" / "a.instances.tif", tmp_path / "gt" / "a.tif", "--gt-binary",
                        "--instances", "--json", out])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["overall"]["instances"]["f1"] == pytest.approx(1.0)
    res = _run(runner, [tmp_path / "pred", tmp_path / "gt", "--gt-binary", "--instances",
                        "--pred-instances", "components", "--json", out])
    assert json.loads(out.read_text())["overall"]["instances"]["tp"] == 0  # the merged component matches neither
