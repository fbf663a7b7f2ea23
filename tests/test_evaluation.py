from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.evaluation import EvaluateConfig, pair_label_files, run_evaluate


def evaluate_labels(pred, gt, **settings):
    return run_evaluate(pred, gt, config=EvaluateConfig(**settings))


def _img(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack")
    return path


def test_pairing_prefers_labels_files_and_reports_orphans(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    z = np.zeros((4, 4), np.uint8)
    for name in ("a.labels.tif", "b.labels.tif", "c.labels.tif", "a.probabilities.tif", "a.preview.png"):
        _img(pred / name, z) if name.endswith(".tif") else None
    for name in ("a.tif", "a.labels.tif", "b.labels.tif", "d.labels.tif"):
        _img(gt / name, z)
    p = pair_label_files(pred, gt)
    assert [(k, pp.name, gp.name) for k, pp, gp in p.pairs] == [
        ("a", "a.labels.tif", "a.labels.tif"), ("b", "b.labels.tif", "b.labels.tif")
    ]
    assert [x.name for x in p.pred_only] == ["c.labels.tif"] and [x.name for x in p.gt_only] == ["d.labels.tif"]


def test_pairing_plain_folder_file_and_errors(tmp_path):
    z = np.zeros((4, 4), np.uint8)
    _img(tmp_path / "gt" / "x.tif", z)
    _img(tmp_path / "pred" / "x.labels.tif", z)
    assert len(pair_label_files(tmp_path / "pred", tmp_path / "gt").pairs) == 1
    single = pair_label_files(tmp_path / "pred" / "x.labels.tif", tmp_path / "gt")
    assert single.pairs[0][2].name == "x.tif"
    odd = _img(tmp_path / "other.tif", z)
    assert pair_label_files(odd, tmp_path / "gt" / "x.tif").pairs[0][0] == "other"
    _img(tmp_path / "gt2" / "y.tif", z)
    with pytest.raises(InputError, match="no prediction in .* matches a ground truth"):
        pair_label_files(tmp_path / "pred", tmp_path / "gt2")
    with pytest.raises(InputError, match="ground truth '.*nope' does not exist"):
        pair_label_files(tmp_path / "pred", tmp_path / "nope")
    _img(tmp_path / "dup" / "x.labels.tif", z)
    _img(tmp_path / "dup" / "x.labels.tiff", z)
    with pytest.raises(InputError, match="two label images for 'x'"):
        pair_label_files(tmp_path / "dup", tmp_path / "gt")


@pytest.fixture
def pair(tmp_path):
    gt = np.zeros((10, 10), np.uint16)
    gt[0:4, 0:4] = 7
    gt[5:9, 5:9] = 3
    pred = np.zeros((10, 10), np.uint8)
    pred[0:4, 0:3] = 1
    pred[6:9, 6:9] = 1
    pred[0, 9] = 1
    return _img(tmp_path / "p" / "a.labels.tif", pred), _img(tmp_path / "g" / "a.labels.tif", gt)


def test_evaluate_gt_binary_with_instances(pair):
    p, g = pair
    ev = evaluate_labels(p.parent, g.parent, gt_binary=True, instances=True)
    # foreground: TP 21, FP 1, FN 11 -> 21/33; background: TP 67, FP 11, FN 1 -> 67/79
    s = ev.overall
    np.testing.assert_allclose(s.iou, [67 / 79, 21 / 33])
    assert ev.class_names == ("background", "1")
    inst = ev.overall_instances
    assert (inst.tp, inst.fp, inst.fn) == (2, 1, 0)
    d = ev.to_dict()
    assert d["overall"]["iou"]["1"] == pytest.approx(21 / 33)
    assert d["images"][0]["instances"]["f1"] == pytest.approx(0.8)
    assert d["settings"]["gt_binary"] is True


def test_evaluate_without_gt_binary_scores_instance_ids_as_classes(pair):
    p, g = pair
    ev = evaluate_labels(p, g)
    assert len(ev.class_names) == 8  # ids 0..7 in the ground truth
    assert math.isnan(ev.overall.iou[2])  # id 2 occurs nowhere: excluded, not 1
    assert ev.overall_instances is None


def test_evaluate_classes_and_pooling(tmp_path):
    a_gt = _img(tmp_path / "g" / "a.tif", np.array([[0, 1], [1, 1]], np.uint8))
    _img(tmp_path / "p" / "a.tif", np.array([[0, 1], [1, 0]], np.uint8))
    _img(tmp_path / "g" / "b.tif", np.array([[0, 0], [0, 0]], np.uint8))
    _img(tmp_path / "p" / "b.tif", np.array([[0, 0], [0, 0]], np.uint8))
    ev = evaluate_labels(tmp_path / "p", tmp_path / "g", classes=["nucleus", "cell"])
    assert ev.class_names == ("background", "nucleus", "cell")
    a, b = ev.images
    assert a.semantic.iou[1] == pytest.approx(2 / 3) and math.isnan(b.semantic.iou[1])
    assert ev.overall.iou[1] == pytest.approx(2 / 3) and ev.overall.iou[0] == pytest.approx(5 / 6)
    assert ev.mean_image_miou_all == pytest.approx(((1 / 2 + 2 / 3) / 2 + 1.0) / 2)
    _img(a_gt, np.array([[0, 3], [1, 1]], np.uint8))
    with pytest.raises(InputError, match="class id 3 but only 3 classes"):
        evaluate_labels(tmp_path / "p", tmp_path / "g", classes=["nucleus", "cell"])


def test_evaluate_errors(tmp_path, pair):
    p, _ = pair
    g = _img(tmp_path / "g2" / "a.tif", np.zeros((10, 11), np.uint8))
    with pytest.raises(InputError, match=r"has shape \(10, 10\) but ground truth 'a.tif' has \(10, 11\)"):
        evaluate_labels(p, g)
    with pytest.raises(ConfigError, match="--pred-instances must be one of auto, ids, components"):
        evaluate_labels(p, g, instances=True, pred_instances="x")


def test_evaluate_3d(tmp_path):
    vol = np.zeros((4, 6, 6), np.uint8)
    vol[1:3, 1:4, 1:4] = 1
    p = _img(tmp_path / "p.tif", vol)
    g = _img(tmp_path / "g.tif", vol * 5)
    ev = evaluate_labels(p, g, gt_binary=True, instances=True)
    assert ev.overall.miou_all == 1.0 and ev.overall_instances.f1 == 1.0


def test_evaluate_huge_instance_ids(tmp_path):
    """Ids up to 2**32 - 1 in instance ground truth are scored, not sized into a MemoryError."""
    gt = np.zeros((6, 6), np.uint32)
    gt[0:3, 0:3] = 2**32 - 1
    gt[4:6, 4:6] = 123_456
    pred = (gt > 0).astype(np.uint8)
    p, g = _img(tmp_path / "p" / "a.labels.tif", pred), _img(tmp_path / "g" / "a_masks.tif", gt)
    ev = evaluate_labels(p.parent, g.parent, gt_binary=True, instances=True)
    assert ev.overall.miou_all == 1.0 and ev.overall_instances.tp == 2
    with pytest.raises(InputError, match=r"label id 4294967295, more than 1000 classes: .*--gt-binary"):
        evaluate_labels(p, g)


def test_evaluate_config_is_validated_and_json_written(tmp_path, pair):
    with pytest.raises(ConfigError, match=r"--iou-threshold must lie in \(0, 1\]; got 0"):
        EvaluateConfig(threshold=0)
    with pytest.raises(ConfigError, match="--gt-instances must be one of ids, components"):
        EvaluateConfig(gt_instances="x")
    assert EvaluateConfig(classes=["a"]).classes == ("a",) and EvaluateConfig(classes=[]).classes is None
    p, g = pair
    out = tmp_path / "s.json"
    ev = run_evaluate(p, g, config=EvaluateConfig(gt_binary=True), json_out=out)
    assert json.loads(out.read_text())["overall"]["miou_all"] == pytest.approx(ev.overall.miou_all)
