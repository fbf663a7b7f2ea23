"""Validation during training: loss on fixed crops and mIoU on whole images with masks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pointseg_cli.nets import forward_heads
from pointseg_cli.train.data import ImageData
from pointseg_cli.train.losses import PointSupervisionLoss
from pointseg_cli.train.sampler import Batch, CropSampler

#: Whole-image prediction is done in windows of at most this many pixels (voxels), with a margin.
MAX_WINDOW_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class ValidationResult:
    """Validation loss terms (mean over the fixed crops) and IoU scores (NaN without masks).

    ``miou`` is the mean IoU over the object classes and ``iou_background`` the background's
    IoU, from the confusion matrix pooled over the validation images: the definitions of
    ``pointseg evaluate`` (:func:`pointseg_cli.metrics.scores_from_confusion`).
    """

    loss: float
    terms: dict[str, float]
    miou: float
    iou_background: float


def to_device(batch: Batch, device: str) -> Batch:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def predict_image(model: nn.Module, image: np.ndarray, *, divisor: int, device: str, margin: int = 32) -> np.ndarray:
    """Class ids ``(*spatial)`` uint8 of a whole normalised image ``(C, *spatial)``.

    Small images go through the network at once (padded to a multiple of ``divisor``); large ones
    in windows whose centres are kept and whose ``margin`` of context is discarded.
    """
    spatial = image.shape[1:]
    nd = len(spatial)
    side = int(MAX_WINDOW_PIXELS ** (1 / nd)) // divisor * divisor
    core = [min(side - 2 * margin, s) if s > side else s for s in spatial]
    out = np.zeros(spatial, np.uint8)
    starts = [range(0, s, c) for s, c in zip(spatial, core, strict=True)]
    for origin in np.stack(np.meshgrid(*starts, indexing="ij"), -1).reshape(-1, nd):
        lo = [max(o - margin, 0) if c < s else 0 for o, c, s in zip(origin, core, spatial, strict=True)]
        hi = [min(o + c + margin, s) if c < s else s for o, c, s in zip(origin, core, spatial, strict=True)]
        win = torch.from_numpy(image[(slice(None), *(slice(a, b) for a, b in zip(lo, hi, strict=True)))])
        size = win.shape[1:]
        pad = [math.ceil(n / divisor) * divisor - n for n in size]
        flat = [v for p in reversed(pad) for v in (0, p)]
        x = win[None].to(device)
        mode = "reflect" if all(p < n for p, n in zip(pad, size, strict=True)) else "replicate"
        x = F.pad(x, flat, mode=mode) if any(pad) else x
        labels = model(x).argmax(1)[0].cpu().numpy().astype(np.uint8)
        keep_lo = [o - a for o, a in zip(origin, lo, strict=True)]
        keep = tuple(
            slice(k, k + min(c, s - o)) for k, c, s, o in zip(keep_lo, core, spatial, origin, strict=True)
        )
        dst = tuple(slice(o, o + min(c, s - o)) for o, c, s in zip(origin, core, spatial, strict=True))
        out[dst] = labels[keep]
    return out


@torch.no_grad()
def validate(
    model: nn.Module,
    *,
    sampler: CropSampler | None,
    n_batches: int,
    images: list[ImageData],
    loss_fn: PointSupervisionLoss,
    n_classes: int,
    divisor: int,
    device: str,
) -> ValidationResult:
    """Loss on ``n_batches`` fixed validation crops and IoU scores over images carrying ``val_mask``."""
    from pointseg_cli.metrics import confusion_matrix, scores_from_confusion

    was_training = model.training
    model.eval()
    sums: dict[str, float] = {}
    total = 0.0
    if sampler is not None:
        for i in range(n_batches):
            batch = to_device(sampler.batch(i), device)
            heads = forward_heads(model, batch["image"])
            out = loss_fn(heads["logits"], batch, heads.get("centers"))
            total += float(out.total) / n_batches
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + v / n_batches
    cm = np.zeros((n_classes, n_classes), np.int64)
    with_masks = [im for im in images if im.val_mask is not None]
    for im in with_masks:
        pred = predict_image(model, im.image, divisor=divisor, device=device)
        cm += confusion_matrix(pred, im.val_mask.astype(np.int64), n_classes)  # type: ignore[union-attr]
    model.train(was_training)
    miou = iou_bg = float("nan")
    if with_masks:
        scores = scores_from_confusion(cm)
        miou, iou_bg = float(scores.miou_objects), float(scores.iou[0])
    return ValidationResult(total if sampler is not None else float("nan"), sums, miou, iou_bg)
