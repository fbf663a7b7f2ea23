"""Scoring label images on disk against ground truth (the library behind ``pointseg evaluate``).

Matching rule
    PRED and GT are each a label image or a folder. Two files belong together when their *keys*
    are equal; the key is the stem of the image they belong to (:func:`~pointseg_cli.io.masks.mask_stem`:
    ``x.labels.tif``, ``x_mask.tif`` and ``x.ome.tif`` all have key ``x``). In a folder that holds
    any mask-named file (``*.labels.*``, ``*_mask.*``, ...) only those are used (so a ``segment``
    output folder, or a dataset folder with ``x.tif`` beside ``x.labels.tif``, works as is);
    otherwise every image in the folder except other pointseg outputs is used. A prediction
    ``x.instances.tif`` (the instance image ``segment`` writes) has key ``x`` too; a prediction
    folder holding only such files contributes them. Two single files are paired whatever their
    names. Files without a partner are reported and skipped; no pair at all is an error.

Overall scores
    The semantic "overall" row pools the confusion matrices of all images (dataset-level IoU);
    the mean of the per-image mIoUs is reported beside it. Instance counts are pooled likewise.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg_cli.errors import ConfigError, InputError, check_choice
from pointseg_cli.io.images import ZARR_SUFFIXES, atomic_output, find_images, image_stem
from pointseg_cli.io.masks import is_mask_name, mask_files, mask_stem, read_labels
from pointseg_cli.metrics import (
    InstanceScores,
    SemanticScores,
    confusion_matrix,
    label_components,
    match_instances,
    match_instances_per_class,
    pad_confusion,
    scores_from_confusion,
    sum_instance_scores,
)
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

INSTANCE_SOURCES = ("ids", "components")
#: ``auto``: the ``x.instances.*`` image beside a prediction when there is one, else components.
PRED_INSTANCE_SOURCES = ("auto", *INSTANCE_SOURCES)
_INSTANCES = ".instances"
#: Largest class id scored without ``--classes``; above it the labels are taken for instance ids.
MAX_CLASS_ID = 1000


@dataclass(frozen=True)
class Pairing:
    """Prediction/ground-truth file pairs and the files left without a partner."""

    pairs: tuple[tuple[str, Path, Path], ...]
    pred_only: tuple[Path, ...] = ()
    gt_only: tuple[Path, ...] = ()


def _pred_key(path: Path) -> str:
    """Matching key of a prediction: ``x.instances.tif`` → ``x``, else :func:`mask_stem`."""
    stem = image_stem(path)
    return stem[: -len(_INSTANCES)] if stem.endswith(_INSTANCES) and len(stem) > len(_INSTANCES) else mask_stem(path)


def _prediction_files(folder: Path) -> dict[str, Path]:
    """Label images of a prediction folder; its ``*.instances.*`` files when it holds no others."""
    insts = {_pred_key(p): p for p in find_images([folder], include_derived=True)
             if image_stem(p).endswith(_INSTANCES)}
    try:
        found = mask_files(folder, what="label image")
    except InputError:
        if insts:
            return insts
        raise
    return found if not insts or any(is_mask_name(p) for p in found.values()) else insts


def instances_file(pred: Path) -> Path | None:
    """The instance image of a prediction: itself if it is ``x.instances.*``, else that sibling."""
    if image_stem(pred).endswith(_INSTANCES):
        return pred
    sibling = pred.with_name(_pred_key(pred) + _INSTANCES + pred.name[len(image_stem(pred)):])
    return sibling if sibling.exists() else None


def _read_prediction(path: Path, *, axes: str | None, want_ids: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Class ids of a prediction, and its instance ids when wanted and available.

    For ``x.instances.*`` the class ids come from ``x.labels.*`` beside it, else from the
    instance foreground (class 1).
    """
    inst_path = instances_file(path)
    if inst_path == path:
        ids = read_labels(path, axes=axes, instances=True)
        labels = path.with_name(_pred_key(path) + ".labels" + path.name[len(image_stem(path)):])
        return (read_labels(labels, axes=axes) if labels.exists() else (ids > 0).astype(np.uint8)), ids
    ids = read_labels(inst_path, axes=axes, instances=True) if want_ids and inst_path is not None else None
    return read_labels(path, axes=axes), ids


def _is_folder(path: Path) -> bool:
    return path.is_dir() and not path.name.lower().endswith(ZARR_SUFFIXES)


def pair_label_files(pred: str | Path, gt: str | Path) -> Pairing:
    """Pair prediction and ground-truth files by the matching rule in the module docstring."""
    pred, gt = Path(pred), Path(gt)
    for name, p in (("prediction", pred), ("ground truth", gt)):
        if not p.exists():
            raise InputError(f"{name} '{p}' does not exist")
    pred_dir, gt_dir = _is_folder(pred), _is_folder(gt)
    if not pred_dir and not gt_dir:
        return Pairing(pairs=((_pred_key(pred), pred, gt),))
    preds = _prediction_files(pred) if pred_dir else {_pred_key(pred): pred}
    gts = mask_files(gt, what="label image") if gt_dir else {mask_stem(gt): gt}
    keys = sorted(set(preds) & set(gts))
    pairing = Pairing(
        pairs=tuple((k, preds[k], gts[k]) for k in keys),
        pred_only=tuple(preds[k] for k in sorted(set(preds) - set(gts))),
        gt_only=tuple(gts[k] for k in sorted(set(gts) - set(preds))),
    )
    if not keys:
        raise InputError(
            f"no prediction in '{pred}' matches a ground truth in '{gt}' by name "
            f"(prediction keys: {', '.join(sorted(preds)[:5])}; ground-truth keys: {', '.join(sorted(gts)[:5])})"
        )
    return pairing


@dataclass(frozen=True)
class ImageScores:
    """Scores of one prediction/ground-truth pair."""

    key: str
    pred: Path
    gt: Path
    semantic: SemanticScores
    instances: InstanceScores | None = None
    instances_per_class: dict[int, InstanceScores] | None = None


@dataclass(frozen=True)
class Evaluation:
    """Per-image and overall scores.

    Attributes
    ----------
    class_names : names of classes 0..n-1 (``background`` first).
    images : per-image scores, confusion matrices padded to ``len(class_names)``.
    overall : scores of the pooled confusion matrix.
    overall_instances : pooled instance counts (``None`` unless instances were scored).
    pairing : which files were paired and which were left out.
    """

    class_names: tuple[str, ...]
    images: tuple[ImageScores, ...]
    overall: SemanticScores
    overall_instances: InstanceScores | None
    pairing: Pairing
    settings: dict[str, object] = field(default_factory=dict)
    overall_instances_per_class: dict[int, InstanceScores] | None = None

    @property
    def mean_image_miou_objects(self) -> float:
        vals = np.array([s.semantic.miou_objects for s in self.images])
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else math.nan

    @property
    def mean_image_miou_all(self) -> float:
        vals = np.array([s.semantic.miou_all for s in self.images])
        vals = vals[~np.isnan(vals)]
        return float(vals.mean()) if vals.size else math.nan

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary (NaN → ``None``)."""

        def clean(v: float) -> float | None:
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        def sem(s: SemanticScores) -> dict[str, object]:
            return {
                "iou": {n: clean(float(v)) for n, v in zip(self.class_names, s.iou, strict=True)},
                "miou_objects": clean(s.miou_objects), "miou_all": clean(s.miou_all),
                "confusion": s.confusion.tolist(),
            }

        def inst(s: InstanceScores | None) -> dict[str, object] | None:
            return None if s is None else {k: clean(v) for k, v in s.to_dict().items()}

        def per_class(pc: dict[int, InstanceScores] | None) -> dict[str, object] | None:
            name = dict(enumerate(self.class_names))
            return None if pc is None else {name.get(c, str(c)): inst(v) for c, v in pc.items()}

        return {
            "classes": list(self.class_names),
            "images": [
                {"image": r.key, "pred": str(r.pred), "gt": str(r.gt), **sem(r.semantic),
                 "instances": inst(r.instances), "instances_per_class": per_class(r.instances_per_class)}
                for r in self.images
            ],
            "overall": {**sem(self.overall), "instances": inst(self.overall_instances),
                        "instances_per_class": per_class(self.overall_instances_per_class)},
            "mean_per_image": {
                "miou_objects": clean(self.mean_image_miou_objects), "miou_all": clean(self.mean_image_miou_all),
            },
            "unmatched": {
                "pred": [str(p) for p in self.pairing.pred_only], "gt": [str(p) for p in self.pairing.gt_only],
            },
            "settings": self.settings,
        }


@dataclass(frozen=True)
class EvaluateConfig:
    """How predictions are scored against ground truth.

    Attributes
    ----------
    classes : names of the object classes 1..K; labels above K are an error. Default: ids
        ``0..max`` found in any image, named by their number.
    gt_binary : score ground truth as foreground (any id > 0 → class 1) vs background, e.g.
        instance-labelled ground truth against a one-class prediction.
    instances : also compute instance F1 / precision / recall at ``IoU >= threshold``.
    pred_instances, gt_instances : ``ids`` (label values are instance ids) or ``components``
        (connected components of each class); for predictions also ``auto``: the
        ``x.instances.*`` image beside ``x.labels.*`` (or the prediction itself when it is one)
        when present, else components. Defaults suit ``segment`` output against
        instance-labelled ground truth.
    threshold : IoU a matched instance pair needs, in (0, 1].
    axes : axes override for reading the files.
    """

    classes: tuple[str, ...] | None = None
    gt_binary: bool = False
    instances: bool = False
    pred_instances: str = "auto"
    gt_instances: str = "ids"
    threshold: float = 0.5
    axes: str | None = None

    def __post_init__(self) -> None:
        check_choice("--pred-instances", self.pred_instances, PRED_INSTANCE_SOURCES)
        check_choice("--gt-instances", self.gt_instances, INSTANCE_SOURCES)
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"--iou-threshold must lie in (0, 1]; got {self.threshold}")
        object.__setattr__(self, "classes", tuple(self.classes) if self.classes else None)


def run_evaluate(
    pred: str | Path,
    gt: str | Path,
    *,
    config: EvaluateConfig | None = None,
    json_out: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> Evaluation:
    """Score predicted label images against ground truth (``pointseg evaluate``).

    Parameters
    ----------
    pred, gt : label image files or folders (see the matching rule above).
    config : how to score; defaults to :class:`EvaluateConfig` ``()``.
    json_out : also write every score (:meth:`Evaluation.to_dict`) to this JSON file, atomically.
    progress : optional ``progress(task, done, total)`` callback.
    """
    config = config or EvaluateConfig()
    result = _evaluate(pred, gt, config=config, progress=progress)
    if json_out is not None:
        with atomic_output(json_out) as tmp:
            Path(tmp).write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    return result


def _evaluate(
    pred: str | Path, gt: str | Path, *, config: EvaluateConfig, progress: ProgressCallback | None
) -> Evaluation:
    classes, gt_binary, instances, axes = config.classes, config.gt_binary, config.instances, config.axes
    pred_instances, gt_instances, threshold = config.pred_instances, config.gt_instances, config.threshold
    pairing = pair_label_files(pred, gt)
    fixed = len(classes) + 1 if classes else None
    cms: list[np.ndarray] = []
    inst: list[InstanceScores | None] = []
    per_class: list[dict[int, InstanceScores] | None] = []
    total = len(pairing.pairs)
    for i, (key, p_path, g_path) in enumerate(pairing.pairs):
        p, p_ids = _read_prediction(p_path, axes=axes, want_ids=instances and pred_instances == "auto")
        g = read_labels(g_path, axes=axes, instances=gt_binary)
        if p.shape != g.shape:
            raise InputError(
                f"prediction '{p_path.name}' has shape {p.shape} but ground truth '{g_path.name}' has {g.shape}"
            )
        g_sem = (g > 0).astype(np.uint8) if gt_binary else g
        if not gt_binary and not classes and np.unique(g).size > 20:
            log.warning("ground truth '%s' has %d ids: instance labels? pass --gt-binary", g_path.name,
                        np.unique(g).size)
        n = fixed or int(max(p.max(initial=0), g_sem.max(initial=0))) + 1
        if fixed is None and n > MAX_CLASS_ID + 1:
            raise InputError(
                f"'{key}' has label id {n - 1}, more than {MAX_CLASS_ID} classes: instance labels? "
                "pass --gt-binary (ground truth) or --classes"
            )
        try:
            cms.append(confusion_matrix(p, g_sem, n))
        except InputError as exc:
            raise InputError(f"'{key}': {exc} (--classes lists {len(classes or [])})") from None
        if instances:
            pi = p_ids if p_ids is not None else p if pred_instances == "ids" else label_components(p)
            gi = g if gt_instances == "ids" else label_components(g)
            inst.append(match_instances(pi, gi, threshold=threshold))
            classed = gt_binary or gt_instances == "components"  # else the ground truth has no classes
            per_class.append(match_instances_per_class(pi, gi, p, g_sem, threshold=threshold) if classed else None)
        else:
            inst.append(None)
            per_class.append(None)
        if progress is not None:
            progress("images", i + 1, total)
    n_all = max(cm.shape[0] for cm in cms)
    n_all = max(n_all, 2)
    names = ("background", *(classes or [str(c) for c in range(1, n_all)]))
    rows = tuple(
        ImageScores(key=k, pred=pp, gt=gp, semantic=scores_from_confusion(pad_confusion(cm, n_all)), instances=s,
                    instances_per_class=pc)
        for (k, pp, gp), cm, s, pc in zip(pairing.pairs, cms, inst, per_class, strict=True)
    )
    pooled_pc = None
    if any(pc is not None for pc in per_class):
        ids = sorted({c for pc in per_class if pc for c in pc})
        pooled_pc = {c: sum_instance_scores([pc[c] for pc in per_class if pc and c in pc], threshold=threshold)
                     for c in ids}
    pooled = sum((pad_confusion(cm, n_all) for cm in cms), np.zeros((n_all, n_all), dtype=np.int64))
    return Evaluation(
        class_names=tuple(names),
        images=rows,
        overall=scores_from_confusion(pooled),
        overall_instances=sum_instance_scores([s for s in inst if s is not None], threshold=threshold)
        if instances else None,
        overall_instances_per_class=pooled_pc,
        pairing=pairing,
        settings={"gt_binary": gt_binary, "instances": instances, "pred_instances": pred_instances,
                  "gt_instances": gt_instances, "threshold": threshold},
    )
