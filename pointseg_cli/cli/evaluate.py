"""`pointseg evaluate`: IoU per class, mIoU and (optionally) instance F1 of label images."""

from __future__ import annotations

import math
from pathlib import Path

import typer
from rich.table import Table

from pointseg_cli.cli._common import RichProgress, console, get_state, progress_enabled
from pointseg_cli.evaluation import EvaluateConfig, Evaluation, run_evaluate
from pointseg_cli.io.points import parse_classes
from pointseg_cli.metrics import InstanceScores, SemanticScores


def command(
    ctx: typer.Context,
    pred: Path = typer.Argument(..., help="Predicted label image, or a folder of them (e.g. segment's output)."),
    gt: Path = typer.Argument(..., help="Ground-truth label image, or a folder of them."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write all scores to this JSON file."),
    instances: bool = typer.Option(
        False, "--instances", help="Also score instances: F1, precision, recall, PQ, AP over IoU 0.5:0.95."
    ),
    classes: str | None = typer.Option(
        None, "--classes", help="Names of object classes 1..K, comma-separated (labels above K are an error)."
    ),
    gt_binary: bool = typer.Option(
        False, "--gt-binary", help="Score ground truth as foreground (any id > 0 → class 1), e.g. instance labels."
    ),
    pred_instances: str = typer.Option(
        "auto", "--pred-instances",
        help="Prediction instances: 'auto' (x.instances.tif beside x.labels.tif, else components), "
        "'components' of each class, or 'ids'.",
    ),
    gt_instances: str = typer.Option(
        "ids", "--gt-instances", help="Ground-truth instances: label 'ids', or connected 'components'."
    ),
    iou_threshold: float = typer.Option(0.5, "--iou-threshold", help="IoU a matched instance pair needs."),
    axes: str | None = typer.Option(None, "--axes", help="Override the label images' axes, e.g. ZYX."),
) -> None:
    """Score predicted label images against ground truth: IoU per class, mIoU, instance F1.

    PRED and GT are files or folders; files pair up by stem without '.labels' or '.instances'
    (x.labels.tif ↔ x.tif, x.instances.tif ↔ x.tif).

    In a folder holding any *.labels.* file, only those files are used.

    A class absent from both prediction and ground truth is left out of the mean (not scored 1).
    """
    state = get_state(ctx)  # pass ctx: typer 0.29 vendors click, so a context-less lookup finds nothing
    config = EvaluateConfig(
        classes=parse_classes(classes), gt_binary=gt_binary, instances=instances, pred_instances=pred_instances,
        gt_instances=gt_instances, threshold=iou_threshold, axes=axes,
    )
    with RichProgress(enabled=progress_enabled(state), transient=True) as progress:
        result = run_evaluate(pred, gt, config=config, json_out=json_out, progress=progress)
    if not state.quiet:
        _render(result)


def _num(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.3f}"


def _cells(sem: SemanticScores, inst: InstanceScores | None, with_inst: bool) -> list[str]:
    cells = [_num(v) for v in sem.iou] + [_num(sem.miou_objects), _num(sem.miou_all)]
    if with_inst:
        cells += [_num(inst.f1), _num(inst.precision), _num(inst.recall)] if inst else ["", "", ""]
    return cells


def _render(result: Evaluation) -> None:
    with_inst = result.overall_instances is not None
    title = "IoU per class (– = absent from prediction and ground truth)"
    if with_inst:
        title += f"; instance F1, precision P, recall R at IoU ≥ {result.settings['threshold']:g}"
    table = Table(title=title, title_justify="left")
    table.add_column("image", no_wrap=True)
    for name in result.class_names:
        table.add_column(name, justify="right")
    table.add_column("mIoU obj", justify="right")
    table.add_column("mIoU all", justify="right")
    if with_inst:
        for col in ("F1", "P", "R"):
            table.add_column(col, justify="right")
    for row in result.images:
        table.add_row(row.key, *_cells(row.semantic, row.instances, with_inst))
    table.add_section()
    table.add_row("overall", *_cells(result.overall, result.overall_instances, with_inst), style="bold")
    console.print(table)
    if with_inst:
        ov = result.overall_instances
        console.print(
            f"instances overall: panoptic quality {_num(ov.pq)}, mean matched IoU {_num(ov.mean_matched_iou)}, "
            f"AP {_num(ov.ap)} (mean of TP/(TP+FP+FN) over IoU 0.50:0.95)"
        )
        names = dict(enumerate(result.class_names))
        for c, sc in (result.overall_instances_per_class or {}).items():
            if len(result.overall_instances_per_class) > 1:
                console.print(f"  {names.get(c, c)}: F1 {_num(sc.f1)}, PQ {_num(sc.pq)}, AP {_num(sc.ap)}")
    console.print(
        f"{len(result.images)} image(s); overall = pooled over all pixels; mean of per-image mIoU: "
        f"objects {_num(result.mean_image_miou_objects)}, "
        f"all {_num(result.mean_image_miou_all)}"
    )
    for side, files in (("predictions", result.pairing.pred_only), ("ground truths", result.pairing.gt_only)):
        if files:
            console.print(f"{len(files)} {side} without a partner were skipped: {', '.join(p.name for p in files[:5])}")

