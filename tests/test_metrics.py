from __future__ import annotations

import math

import numpy as np
import pytest

from pointseg_cli.errors import InputError
from pointseg_cli.metrics import (
    InstanceScores,
    confusion_matrix,
    label_components,
    match_instances,
    match_instances_per_class,
    pad_confusion,
    scores_from_confusion,
    sum_instance_scores,
)

GT = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 0, 1]])


def semantic_scores(pred, gt, n_classes):
    return scores_from_confusion(confusion_matrix(pred, gt, n_classes))


def test_confusion_matrix_rows_are_ground_truth():
    cm = confusion_matrix(PRED, GT, 3)
    assert cm.dtype == np.int64
    assert cm.tolist() == [[3, 1, 0], [1, 3, 0], [0, 0, 0]]


def test_iou_by_hand_and_absent_class_excluded():
    s = semantic_scores(PRED, GT, 3)
    # class 0: TP 3, FP 1, FN 1 -> 3/5; class 1 likewise; class 2 absent from both -> NaN
    np.testing.assert_allclose(s.iou[:2], [0.6, 0.6])
    assert math.isnan(s.iou[2])
    assert s.miou_objects == pytest.approx(0.6)
    assert s.miou_all == pytest.approx(0.6)
    # the paper code's convention would have scored class 2 as 1 and reported 0.8
    np.testing.assert_allclose(s.iou_absent_as_one, [0.6, 0.6, 1.0])
    assert np.mean(s.iou_absent_as_one[1:]) == pytest.approx(0.8)


def test_class_only_in_prediction_counts_as_zero():
    pred = np.array([[0, 2, 1, 1], [0, 0, 1, 1]])
    s = semantic_scores(pred, GT, 3)
    np.testing.assert_allclose(s.iou, [3 / 4, 1.0, 0.0])
    assert s.miou_objects == pytest.approx(0.5)
    assert s.miou_all == pytest.approx((0.75 + 1 + 0) / 3)


def test_all_background():
    z = np.zeros((3, 3), np.uint8)
    s = semantic_scores(z, z, 2)
    assert s.iou[0] == 1.0 and math.isnan(s.iou[1])
    assert math.isnan(s.miou_objects) and s.miou_all == 1.0


@pytest.mark.parametrize(
    "pred, gt, n, message",
    [
        (np.zeros((2, 2), int), np.zeros((2, 3), int), 2, r"shape \(2, 2\) but ground truth has shape \(2, 3\)"),
        (np.zeros((2, 2)), np.zeros((2, 2), int), 2, "must be integers; got dtype float64"),
        (np.full((2, 2), -1), np.zeros((2, 2), int), 2, "must be >= 0"),
        (np.full((2, 2), 3), np.zeros((2, 2), int), 3, r"class id 3 but only 3 classes \(0..2\)"),
        (np.zeros((2, 2), int), np.zeros((2, 2), int), 0, "n_classes must be >= 1"),
    ],
)
def test_confusion_matrix_errors(pred, gt, n, message):
    with pytest.raises(InputError, match=message):
        confusion_matrix(pred, gt, n)


def test_scores_from_confusion_errors_and_padding():
    with pytest.raises(InputError, match="square"):
        scores_from_confusion(np.zeros((2, 3)))
    cm = pad_confusion(np.array([[1, 2], [3, 4]]), 3)
    assert cm.tolist() == [[1, 2, 0], [3, 4, 0], [0, 0, 0]]


# ------------------------------------------------------------------ instances


def test_match_instances_by_hand():
    gt = np.zeros((10, 10), int)
    gt[0:4, 0:4] = 7  # 16 px
    gt[5:9, 5:9] = 3  # 16 px
    pred = np.zeros_like(gt)
    pred[0:4, 0:3] = 1  # 12 px inside gt 7 -> IoU 0.75
    pred[6:9, 6:9] = 2  # 9 px inside gt 3 -> IoU 0.5625
    pred[0, 9] = 5  # false positive
    s = match_instances(pred, gt)
    assert (s.n_pred, s.n_gt, s.tp, s.fp, s.fn) == (3, 2, 2, 1, 0)
    assert s.precision == pytest.approx(2 / 3) and s.recall == 1.0 and s.f1 == pytest.approx(0.8)
    assert s.mean_matched_iou == pytest.approx((0.75 + 0.5625) / 2)
    # a stricter threshold drops the 0.5625 pair
    s = match_instances(pred, gt, threshold=0.6)
    assert (s.tp, s.fp, s.fn) == (1, 2, 1)


def test_match_is_one_to_one_at_exactly_half():
    gt = np.array([[1] * 10 + [2] * 10])
    pred = np.ones_like(gt)  # IoU 0.5 with both ground-truth instances
    s = match_instances(pred, gt)
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)
    assert s.f1 == pytest.approx(2 / 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint64, np.int64])
def test_match_dtypes_and_sparse_ids(dtype):
    gt = np.zeros((6, 6), dtype)
    gt[0:3, 0:3] = 5
    gt[3:6, 3:6] = 200
    pred = np.zeros_like(gt)
    pred[0:3, 0:2] = 1
    pred[3:6, 3:6] = 9
    s = match_instances(pred, gt)
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)
    huge = pred.astype(np.int64) * 10**12  # ids far above the pixel count take the sorting path
    assert match_instances(huge, gt.astype(np.int64)).tp == 2


def test_match_empty_cases():
    z = np.zeros((4, 4), int)
    one = z.copy()
    one[1:3, 1:3] = 9
    s = match_instances(z, one)
    assert (s.n_pred, s.n_gt, s.tp) == (0, 1, 0)
    assert math.isnan(s.precision) and s.recall == 0 and s.f1 == 0
    s = match_instances(z, z)
    assert math.isnan(s.f1) and math.isnan(s.precision) and math.isnan(s.recall)
    with pytest.raises(InputError, match="threshold must lie in"):
        match_instances(z, z, threshold=0)


def test_sum_instance_scores_pools_counts():
    total = sum_instance_scores([InstanceScores(3, 2, 2, 1.5), InstanceScores(1, 4, 1, 0.9)])
    assert (total.n_pred, total.n_gt, total.tp, total.fp, total.fn) == (4, 6, 3, 1, 3)
    assert total.f1 == pytest.approx(6 / 10)
    assert total.to_dict()["mean_matched_iou"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="tp=3"):
        InstanceScores(n_pred=2, n_gt=5, tp=3)


def test_label_components_splits_classes_and_respects_connectivity():
    cls = np.array([[1, 1, 2, 0], [0, 0, 2, 0], [1, 0, 0, 1], [0, 1, 0, 0]])
    lab = label_components(cls)
    assert lab.max() == 5  # {two 1s top}, {2s}, {1 at (2,0)}, {1 at (2,3)}, {1 at (3,1)}
    assert lab[0, 0] == lab[0, 1] and lab[0, 2] == lab[1, 2] and lab[0, 1] != lab[0, 2]
    assert label_components(cls, connectivity=2).max() == 4  # (2,0) and (3,1) touch diagonally


# ------------------------------------------------------------------ PQ, AP, per class

# gt: A = [0:4], B = [6:10]; pred: P1 = A (IoU 1), P2 = [7:11] (3 of 5 -> IoU 0.6), P3 = [13:15] (false positive)
_GT_I = np.zeros((1, 16), np.int32)
_GT_I[0, 0:4], _GT_I[0, 6:10] = 1, 2
_PRED_I = np.zeros((1, 16), np.int32)
_PRED_I[0, 0:4], _PRED_I[0, 7:11], _PRED_I[0, 13:15] = 5, 9, 3


def test_pq_and_dsb_ap_by_hand():
    s = match_instances(_PRED_I, _GT_I)
    assert (s.tp, s.fp, s.fn) == (2, 1, 0)
    assert s.f1 == pytest.approx(0.8) and s.mean_matched_iou == pytest.approx(0.8)
    assert s.pq == pytest.approx((1 + 0.6) / (2 + 0.5))
    # t = 0.50, 0.55, 0.60: TP 2 -> 2/3; t = 0.65 .. 0.95: TP 1 -> 1/4
    assert s.tp_at == (2, 2, 2, 1, 1, 1, 1, 1, 1, 1)
    assert s.ap == pytest.approx((3 * 2 / 3 + 7 * 1 / 4) / 10)
    d = s.to_dict()
    assert d["pq"] == pytest.approx(0.64) and d["ap"] == pytest.approx(0.375)


def test_ap_pooled_and_empty():
    s = match_instances(_PRED_I, _GT_I)
    pooled = sum_instance_scores([s, s])
    assert pooled.tp_at == tuple(2 * t for t in s.tp_at) and pooled.ap == pytest.approx(s.ap)
    empty = match_instances(np.zeros((3, 3), int), np.zeros((3, 3), int))
    assert math.isnan(empty.ap) and math.isnan(empty.pq)
    only_gt = match_instances(np.zeros((1, 16), int), _GT_I)
    assert only_gt.ap == 0.0 and only_gt.pq == 0.0


def test_per_class_scores():
    pred_cls = np.where(np.isin(_PRED_I, [5, 9]), 1, np.where(_PRED_I > 0, 2, 0))
    gt_cls = np.where(_GT_I == 1, 1, np.where(_GT_I == 2, 2, 0))
    per = match_instances_per_class(_PRED_I, _GT_I, pred_cls, gt_cls)
    assert sorted(per) == [1, 2]
    # class 1: P1 matches A, P2 (class 1) has no class-1 partner; class 2: P3 vs B, no overlap
    assert (per[1].tp, per[1].n_pred, per[1].n_gt) == (1, 2, 1)
    assert per[1].f1 == pytest.approx(2 / 3)
    assert (per[2].tp, per[2].n_pred, per[2].n_gt) == (0, 1, 1)
    with pytest.raises(InputError, match="prediction classes have shape"):
        match_instances_per_class(_PRED_I, _GT_I, pred_cls[:, :3], gt_cls)
