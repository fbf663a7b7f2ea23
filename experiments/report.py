"""The Markdown report of the ablation: one section per data set, rebuilt from each one's results.json."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from protocol import DATASETS, ROOT, ROWS, dataset_dir

#: The paper's numbers (Table 1), for the notes under each table.
PAPER = {
    "synth3d": "BBBC024 IoU: pCE 0.32, ours 0.67, full 0.88",
    "synth-he": "CoNSeP mIoU: pCE 0.46 < pCE+Obj 0.50 < pCE+Img 0.55 ≈ Gauss Obj 0.55 < ours 0.555 < full 0.58",
    "bbbc007": "not in the paper",
    "synth-sim": "no comparable numbers (the paper's SIM volumes are not public)",
}
#: Settings that must agree for a new result to merge into an earlier one.
SAME_SETTINGS = ("train_args", "split", "classes", "quick")


def _fmt(values: list[float]) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f}" if v.size == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def dataset_section(res: dict) -> str:
    """The Markdown section of one data set's results."""
    classes = res["classes"]
    multi = len(classes) > 1
    head = ["row", *(f"IoU {c}" for c in classes), "mIoU"] if multi else ["row", "IoU (nucleus)", "instance F1"]
    head.append("runs")
    lines = [
        f"## {res['title']}",
        "",
        f"Split: train {res['split']['train']}, "
        f"val {res['split']['val']}, test {res['split']['test']}. Seeds: {res['seeds']}. "
        f"{'QUICK smoke-test budget: numbers are meaningless.' if res['quick'] else ''}",
        "",
        f"Training budget (every row): `{' '.join(res.get('train_args', []))}`.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in ROWS:
        runs = res["rows"].get(row)
        if not runs:
            continue
        ok = [r for r in runs if "error" not in r]
        cells = [row + ("" if len(ok) == len(runs) else f" ({len(runs) - len(ok)} failed)")]
        if multi:
            cells += [_fmt([r["iou"][c] for r in ok]) for c in classes]
        cells.append(_fmt([r["miou"] for r in ok]))
        if not multi:
            cells.append(_fmt([r.get("f1", float("nan")) for r in ok]))
        cells.append(str(len(ok)))
        lines.append("| " + " | ".join(cells) + " |")
    if res.get("tuning"):
        lines += ["", "Tuned on the validation split (ours, seed 0; best epoch's validation mIoU):", "",
                  "| flags | val mIoU |", "|---|---|"]  # fmt: skip
        lines += [f"| `{' '.join(t['flags'])}` | {t['val_miou']:.3f} |" for t in res["tuning"]]
    errors = [
        f"- {row} seed {r['seed']}: {r['error']}" for row in ROWS for r in res["rows"].get(row, []) if "error" in r
    ]
    lines += ["", f"Paper: {PAPER[res['dataset']]}.", "",
              f"Machine: {res['machine']}; {res['elapsed_s'] / 60:.1f} min for this table."]  # fmt: skip
    if errors:
        lines += ["", "Failed runs:", *errors]
    lines += ["", "<details><summary>Commands</summary>", "", "```bash", f"WORK={res['work']}", *res["commands"],
              "```", "", "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def write_markdown(work: Path, out: Path, quick: bool) -> None:
    """Rebuild ``out`` from every data set's ``results.json`` present in ``work``."""
    parts = [
        "# Results: the paper's ablation on data we have",
        "",
        "Produced by `experiments/reproduce.py` (see its docstring for the protocol). IoU of the object "
        "class(es) on the held-out test split, pooled over its images; mIoU = mean over object classes "
        "(classes absent from both prediction and ground truth excluded). mean ± std over seeds.",
        "",
    ]
    for ds in DATASETS:
        f = dataset_dir(work, ds, quick) / "results.json"
        if f.exists():
            parts.append(dataset_section(json.loads(f.read_text())))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts))
    print(f"wrote {out}")


def same_settings(old: dict | None, res: dict) -> bool:
    return bool(old) and all(old.get(k) == res[k] for k in SAME_SETTINGS)  # type: ignore[union-attr]


def merge(old: dict | None, res: dict) -> dict:
    """Keep rows of an earlier run with the same settings that this run did not redo (re-running one row)."""
    if not old or not same_settings(old, res):
        return res
    kept = {row: runs for row, runs in old.get("rows", {}).items() if row not in res["rows"]}
    merged = dict(
        res, rows={row: (res["rows"].get(row) or kept[row]) for row in ROWS if row in res["rows"] or row in kept}
    )
    merged["seeds"] = sorted({*old.get("seeds", []), *res["seeds"]})
    merged["commands"] = [*old.get("commands", []), *(c for c in res["commands"] if c not in old.get("commands", []))]
    merged["elapsed_s"] = old.get("elapsed_s", 0.0) + res["elapsed_s"]
    merged["tuning"] = res["tuning"] or old.get("tuning", [])
    return merged


def relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (portable commands in the report)."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def machine() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()} ({os.cpu_count()} CPU cores, {cuda}), torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
