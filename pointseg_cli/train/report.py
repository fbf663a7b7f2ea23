"""Run-dir reports: ``metrics.csv`` (one row per epoch) and ``curves.png``, both written atomically."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pointseg_cli.io.images import atomic_output

#: Column order of metrics.csv (terms that a run does not use stay empty).
COLUMNS = (
    "epoch", "step", "lr", "seconds",
    "train_loss", "train_point", "train_obj", "train_img", "train_dense", "train_center",
    "val_loss", "val_point", "val_obj", "val_img", "val_dense", "val_center",
    "val_miou", "val_iou_background",
)  # fmt: skip
#: ``val_miou`` is the mean IoU over the object classes (as ``pointseg evaluate`` reports it);
#: the background's IoU is its own column.


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_metrics_csv(path: str | Path, history: Sequence[dict[str, Any]]) -> Path:
    """Write every epoch's row of ``history`` (dicts keyed by :data:`COLUMNS`)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in history:
        writer.writerow([_fmt(row.get(c)) for c in COLUMNS])
    path = Path(path)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(buf.getvalue())
    return path


def plot_curves(path: str | Path, history: Sequence[dict[str, Any]]) -> Path:
    """Loss terms (train solid, validation dashed) and validation IoU per epoch, as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax_loss, ax_iou = fig.subplots(1, 2)
    epochs = [r["epoch"] for r in history]
    colours = {"loss": "k", "point": "tab:blue", "obj": "tab:orange", "img": "tab:green", "dense": "tab:purple",
               "center": "tab:cyan"}
    for term, colour in colours.items():
        for split, style in (("train", "-"), ("val", "--")):
            ys = [r.get(f"{split}_{term}") for r in history]
            if any(y is not None and not math.isnan(y) for y in ys):
                vals = [math.nan if y is None else y for y in ys]
                ax_loss.plot(epochs, vals, style, color=colour, label=f"{split} {term}", marker=".")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=7, ncol=2)
    ax_loss.set_title("loss terms (train solid, validation dashed)")
    has_iou = False
    for key, colour, label in (("val_miou", "tab:red", "mIoU (object classes)"),
                               ("val_iou_background", "tab:brown", "IoU (background)")):
        ys = [r.get(key, math.nan) for r in history]
        if any(not math.isnan(y) for y in ys):
            ax_iou.plot(epochs, ys, "-o", color=colour, label=label, markersize=3)
            has_iou = True
    ax_lr = ax_iou.twinx()
    ax_lr.plot(epochs, [r["lr"] for r in history], ":", color="grey", label="lr")
    ax_lr.set_ylabel("learning rate")
    ax_lr.set_yscale("log")
    ax_iou.set_xlabel("epoch")
    ax_iou.set_ylabel("validation IoU")
    ax_iou.set_ylim(0, 1)
    ax_iou.set_title("validation mIoU" if has_iou else "validation mIoU (no --val-masks given)")
    if has_iou:
        ax_iou.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png")
    return path
