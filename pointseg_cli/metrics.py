"""Segmentation scores: per-class IoU and mIoU from a confusion matrix, and instance F1.

Semantic scores
    ``IoU_c = TP_c / (TP_c + FP_c + FN_c)``. A class absent from both prediction and ground truth
    (denominator 0) gets IoU NaN and is *excluded* from the means. The paper's evaluation code
    scored such a class 1, which inflates the mean on images where a class does not occur;
    :attr:`SemanticScores.iou_absent_as_one` reproduces that convention for comparison only.
    ``miou_objects`` averages classes ``1..K``; ``miou_all`` also includes background (class 0).

Instance scores
    Instances are matched one-to-one, maximising the total IoU among pairs with
    ``IoU >= threshold`` (0.5 by default; above 0.5 a match is unique anyway). Matched pairs are
    true positives, unmatched predictions false positives, unmatched ground-truth instances false
    negatives; ``F1 = 2 TP / (2 TP + FP + FN)``. Ratios whose denominator is 0 are NaN.
    Panoptic quality ``PQ = sum of matched IoU / (TP + FP/2 + FN/2)`` (segmentation quality
    times recognition quality) at the matching threshold. Average precision is the DSB2018
    metric: ``TP_t / (TP_t + FP_t + FN_t)`` averaged over ``t = 0.50, 0.55, ..., 0.95``, where a
    pair counts at ``t`` when its IoU is at least ``t``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import InputError


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise InputError(f"prediction has shape {pred.shape} but ground truth has shape {gt.shape}")
    for name, arr in (("prediction", pred), ("ground truth", gt)):
        if arr.dtype.kind not in "iub":
            raise InputError(f"{name} labels must be integers; got dtype {arr.dtype}")
        if arr.size and arr.dtype.kind == "i" and arr.min() < 0:
            raise InputError(f"{name} labels must be >= 0; found {arr.min()}")
    return pred, gt


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel confusion matrix.

    Parameters
    ----------
    pred, gt : numpy.ndarray, same shape, integer class ids in ``0..n_classes-1``.
    n_classes : number of classes including background.

    Returns
    -------
    numpy.ndarray, shape (n_classes, n_classes), int64
        ``cm[g, p]`` = number of pixels with ground truth ``g`` predicted as ``p``.
    """
    pred, gt = _check_pair(pred, gt)
    if n_classes < 1:
        raise InputError(f"n_classes must be >= 1; got {n_classes}")
    for name, arr in (("prediction", pred), ("ground truth", gt)):
        if arr.size and int(arr.max()) >= n_classes:
            raise InputError(
                f"{name} has class id {int(arr.max())} but only {n_classes} classes (0..{n_classes - 1}) exist"
            )
    flat = gt.astype(np.int64).ravel() * n_classes + pred.astype(np.int64).ravel()
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


@dataclass(frozen=True)
class SemanticScores:
    """Per-class IoU and its means.

    Attributes
    ----------
    confusion : (n, n) int64 confusion matrix (rows ground truth, columns prediction).
    iou : (n,) float64 IoU per class, NaN where the class is absent from both.
    miou_objects : mean IoU over object classes 1..n-1 present in either image (NaN if none).
    miou_all : mean IoU over all present classes including background.
    """

    confusion: np.ndarray
    iou: np.ndarray
    miou_objects: float
    miou_all: float

    def __post_init__(self) -> None:
        n = self.iou.shape[0]
        if self.confusion.shape != (n, n):
            raise ValueError(f"confusion {self.confusion.shape} does not match {n} classes")

    @property
    def n_classes(self) -> int:
        return int(self.iou.shape[0])

    @property
    def iou_absent_as_one(self) -> np.ndarray:
        """IoU with absent classes scored 1 (the paper code's convention; for comparison only)."""
        return np.where(np.isnan(self.iou), 1.0, self.iou)


def scores_from_confusion(cm: np.ndarray) -> SemanticScores:
    """IoU per class and mIoU (over object classes, and over all classes) from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise InputError(f"confusion matrix must be square (n, n); got shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(axis=0) + cm.sum(axis=1) - np.diag(cm)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(denom > 0, tp / np.maximum(denom, 1), np.nan)
    return SemanticScores(confusion=cm, iou=iou, miou_objects=_nanmean(iou[1:]), miou_all=_nanmean(iou))


def pad_confusion(cm: np.ndarray, n_classes: int) -> np.ndarray:
    """Grow a confusion matrix to ``n_classes`` (new classes have no pixels)."""
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    n = cm.shape[0]
    out[:n, :n] = cm
    return out


# --------------------------------------------------------------------------------------------
# instances


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@dataclass(frozen=True)
class InstanceScores:
    """Object-level detection scores at an IoU threshold.

    Attributes
    ----------
    n_pred, n_gt : number of predicted and ground-truth instances.
    tp : matched pairs; ``fp = n_pred - tp``, ``fn = n_gt - tp``.
    sum_matched_iou : sum of the IoU of the matched pairs.
    threshold : the IoU a pair needs to match.
    """

    n_pred: int
    n_gt: int
    tp: int
    sum_matched_iou: float = 0.0
    threshold: float = 0.5
    ap_thresholds: tuple[float, ...] = ()
    tp_at: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.tp <= min(self.n_pred, self.n_gt):
            raise ValueError(f"tp={self.tp} must lie in 0..min(n_pred={self.n_pred}, n_gt={self.n_gt})")
        if len(self.tp_at) != len(self.ap_thresholds):
            raise ValueError(f"{len(self.tp_at)} tp counts for {len(self.ap_thresholds)} AP thresholds")

    @property
    def fp(self) -> int:
        return self.n_pred - self.tp

    @property
    def fn(self) -> int:
        return self.n_gt - self.tp

    @property
    def precision(self) -> float:
        return _ratio(self.tp, self.n_pred)

    @property
    def recall(self) -> float:
        return _ratio(self.tp, self.n_gt)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, self.n_pred + self.n_gt)

    @property
    def mean_matched_iou(self) -> float:
        return _ratio(self.sum_matched_iou, self.tp)

    @property
    def pq(self) -> float:
        """Panoptic quality: sum of matched IoU / (TP + FP/2 + FN/2)."""
        return _ratio(self.sum_matched_iou, self.tp + 0.5 * (self.fp + self.fn))

    @property
    def ap(self) -> float:
        """DSB2018 average precision: mean over :attr:`ap_thresholds` of TP / (TP + FP + FN)."""
        if not self.ap_thresholds or self.n_pred + self.n_gt == 0:
            return math.nan
        return float(np.mean([t / (self.n_pred + self.n_gt - t) for t in self.tp_at]))

    def to_dict(self) -> dict[str, float | int]:
        return {
            "n_pred": self.n_pred, "n_gt": self.n_gt, "tp": self.tp, "fp": self.fp, "fn": self.fn,
            "precision": self.precision, "recall": self.recall, "f1": self.f1,
            "mean_matched_iou": self.mean_matched_iou, "pq": self.pq, "ap": self.ap, "threshold": self.threshold,
        }


def sum_instance_scores(scores: Iterable[InstanceScores], *, threshold: float = 0.5) -> InstanceScores:
    """Pool counts over images (micro average)."""
    scores = list(scores)
    grids = {s.ap_thresholds for s in scores}
    ap_t = grids.pop() if len(grids) == 1 else ()
    return InstanceScores(
        n_pred=sum(s.n_pred for s in scores), n_gt=sum(s.n_gt for s in scores), tp=sum(s.tp for s in scores),
        sum_matched_iou=float(sum(s.sum_matched_iou for s in scores)), threshold=threshold,
        ap_thresholds=ap_t, tp_at=tuple(int(sum(v)) for v in zip(*(s.tp_at for s in scores), strict=True))
        if ap_t else (),
    )


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat ids made consecutive (0 stays background), and the number of instances."""
    flat = labels.ravel()
    if flat.dtype.kind == "b" or flat.dtype.itemsize == 8:
        flat = flat.astype(np.int64)  # bincount refuses uint64
    top = int(flat.max()) if flat.size else 0
    if top <= 4 * flat.size + 1024:  # a lookup table is cheaper than sorting every pixel
        present = np.bincount(flat, minlength=top + 1) > 0
        present[0] = False
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[present] = np.arange(1, int(present.sum()) + 1)
        return lut[flat], int(present.sum())
    ids, inverse = np.unique(flat, return_inverse=True)
    if ids[0] == 0:
        return inverse.astype(np.int64), int(ids.size - 1)
    return inverse.astype(np.int64) + 1, int(ids.size)


#: IoU thresholds of the DSB2018 average precision.
AP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))


def _iou_pairs(pred: np.ndarray, gt: np.ndarray, min_iou: float) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray]:
    """Instance counts and the (gt, pred) pairs with ``IoU >= min_iou`` and their IoU."""
    p, n_pred = _relabel(pred)
    g, n_gt = _relabel(gt)
    empty = np.zeros(0, np.int64)
    if n_pred == 0 or n_gt == 0:
        return n_pred, n_gt, empty, empty, np.zeros(0)
    area_p = np.bincount(p, minlength=n_pred + 1)
    area_g = np.bincount(g, minlength=n_gt + 1)
    both = (p > 0) & (g > 0)
    keys = g[both] * (n_pred + 1) + p[both]
    n_keys = (n_gt + 1) * (n_pred + 1)
    if n_keys <= 4 * keys.size + 1024:  # counting beats sorting
        counts = np.bincount(keys, minlength=n_keys)
        pairs = np.flatnonzero(counts)
        inter = counts[pairs]
    else:
        pairs, inter = np.unique(keys, return_counts=True)
    gi, pi = pairs // (n_pred + 1), pairs % (n_pred + 1)
    iou = inter / (area_g[gi] + area_p[pi] - inter)
    ok = iou >= min_iou
    return n_pred, n_gt, gi[ok], pi[ok], iou[ok]


def _assign(gi: np.ndarray, pi: np.ndarray, iou: np.ndarray, threshold: float) -> tuple[int, float]:
    """One-to-one matches among pairs with ``IoU >= threshold`` maximising the total IoU."""
    from scipy.optimize import linear_sum_assignment

    ok = iou >= threshold
    gi, pi, iou = gi[ok], pi[ok], iou[ok]
    if gi.size == 0:
        return 0, 0.0
    rows, gi_c = np.unique(gi, return_inverse=True)
    cols, pi_c = np.unique(pi, return_inverse=True)
    weight = np.zeros((rows.size, cols.size))
    weight[gi_c, pi_c] = iou
    r, c = linear_sum_assignment(weight, maximize=True)
    matched = weight[r, c] > 0
    return int(matched.sum()), float(weight[r, c][matched].sum())


def match_instances(pred: np.ndarray, gt: np.ndarray, *, threshold: float = 0.5,
                    ap_thresholds: tuple[float, ...] = AP_THRESHOLDS) -> InstanceScores:
    """One-to-one matching of instance label images at ``IoU >= threshold``.

    Parameters
    ----------
    pred, gt : numpy.ndarray, same shape, integer instance ids (0 = background; ids need not be
        consecutive).
    threshold : minimum IoU of a matched pair, in (0, 1].
    ap_thresholds : IoU thresholds of the average precision (empty: skip it).

    Returns
    -------
    InstanceScores
    """
    pred, gt = _check_pair(pred, gt)
    if not 0 < threshold <= 1:
        raise InputError(f"IoU threshold must lie in (0, 1]; got {threshold}")
    ap_thresholds = tuple(float(t) for t in ap_thresholds)
    n_pred, n_gt, gi, pi, iou = _iou_pairs(pred, gt, min((threshold, *ap_thresholds)))
    tp, total = _assign(gi, pi, iou, threshold)
    return InstanceScores(
        n_pred=n_pred, n_gt=n_gt, tp=tp, sum_matched_iou=total, threshold=threshold,
        ap_thresholds=ap_thresholds, tp_at=tuple(_assign(gi, pi, iou, t)[0] for t in ap_thresholds),
    )


def match_instances_per_class(pred: np.ndarray, gt: np.ndarray, pred_classes: np.ndarray, gt_classes: np.ndarray,
                              *, threshold: float = 0.5) -> dict[int, InstanceScores]:
    """:func:`match_instances` of each object class separately.

    Parameters
    ----------
    pred, gt : instance ids, same shape.
    pred_classes, gt_classes : class ids of the same voxels (0 = background); an instance is
        scored in the class of its voxels.

    Returns
    -------
    dict
        Class id -> scores, for every class present in either class map.
    """
    pred_classes, gt_classes = np.asarray(pred_classes), np.asarray(gt_classes)
    for name, arr in (("prediction classes", pred_classes), ("ground-truth classes", gt_classes)):
        if arr.shape != np.shape(pred):
            raise InputError(f"{name} have shape {arr.shape} but the instances have {np.shape(pred)}")
    present = np.union1d(np.unique(pred_classes), np.unique(gt_classes))
    return {
        int(c): match_instances(np.where(pred_classes == c, pred, 0), np.where(gt_classes == c, gt, 0),
                                threshold=threshold)
        for c in present if c != 0
    }


def label_components(class_map: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """Instances of a class-id image: connected components of each non-zero class.

    Parameters
    ----------
    class_map : numpy.ndarray, (Y, X) or (Z, Y, X), integer class ids (0 = background).
    connectivity : 1 (faces) up to ndim (faces, edges and corners).

    Returns
    -------
    numpy.ndarray, same shape, int64 instance ids 1..N (0 = background).
    """
    from skimage.measure import label

    out = np.zeros(class_map.shape, dtype=np.int64)
    offset = 0
    for cls in np.unique(class_map):
        if cls == 0:
            continue
        comp = label(class_map == cls, connectivity=connectivity).astype(np.int64)
        out[comp > 0] = comp[comp > 0] + offset
        offset += int(comp.max())
    return out
