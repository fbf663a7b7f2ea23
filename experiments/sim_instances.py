#!/usr/bin/env python
"""Per-class instance F1 of the SIM ablation runs (docs/results.md, synthetic SIM section).

For every run of ``reproduce.py --dataset synth-sim`` found under the given working folders
(``WORK/synth-sim/runs/<row>/seed<N>/model.onnx``), the test volumes are segmented again with
``pointseg segment --instances distance`` (the runs' models have no centre head) and each class's
predicted objects are matched one to one with the ground-truth granules of that class at IoU >= 0.5
(``pointseg_cli.metrics.match_instances_per_class``; ground truth: the demo's instance ids and
class map). Counts are pooled over the test volumes; the table gives mean ± std over seeds.

Usage (from the repository root)::

    python experiments/sim_instances.py runs/reproduce [more WORK folders ...] --out runs/sim-instances.md
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from pointseg_cli.demo import SIM_CLASSES
from pointseg_cli.io.images import read_image
from pointseg_cli.metrics import match_instances_per_class, sum_instance_scores

ROW_NAMES = {"pce": "pCE", "pce_obj": "pCE+Obj", "pce_img_obj": "pCE+Img+Obj", "full": "Full",
             "ours__img_scale_point": "Ours (img-scale point)"}  # fmt: skip


def _gt_instances(raw: Path, stem: str) -> Path:
    """The demo's instance ids: ``<stem>.masks.tif`` (``<stem>.labels.tif`` in older folders)."""
    path = raw / f"{stem}.masks.tif"
    return path if path.is_file() else raw / f"{stem}.labels.tif"


def score_run(rdir: Path, base: Path) -> dict[str, float]:
    """Segment the test split with the run's model; per-class instance F1 pooled over the volumes."""
    pred = rdir / "pred-instances"
    subprocess.run(
        [sys.executable, "-m", "pointseg_cli", "--quiet", "segment", str(base / "test"), "--model",
         str(rdir / "model.onnx"), "--out-dir", str(pred), "--instances", "distance", "--overwrite"],
        check=True,
    )  # fmt: skip
    per_class: dict[int, list] = {}
    for image in sorted((base / "test").glob("*.tif")):
        stem = image.name[: -len(".tif")]
        scores = match_instances_per_class(
            read_image(pred / f"{stem}.instances.tif"), read_image(_gt_instances(base / "raw", stem)),
            read_image(pred / f"{stem}.labels.tif"), read_image(base / "raw" / f"{stem}.classes.tif"),
        )  # fmt: skip
        for c, s in scores.items():
            per_class.setdefault(c, []).append(s)
    return {SIM_CLASSES[c - 1]: sum_instance_scores(v).f1 for c, v in sorted(per_class.items()) if c >= 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("work", nargs="+", type=Path, help="working folders of reproduce.py (holding synth-sim/)")
    p.add_argument("--out", type=Path, required=True, help="Markdown table to write (JSON beside it)")
    a = p.parse_args(argv)
    results: dict[str, list[dict]] = {}
    for work in a.work:
        base = work / "synth-sim"
        for model in sorted(base.glob("runs/*/seed*/model.onnx")):
            row = ROW_NAMES.get(model.parent.parent.name, model.parent.parent.name)
            f1 = score_run(model.parent, base)
            results.setdefault(row, []).append({"seed": int(model.parent.name[4:]), "f1": f1})
            print(row, model.parent.name, {k: round(v, 3) for k, v in f1.items()}, flush=True)
    lines = ["| row | " + " | ".join(f"F1 {c}" for c in SIM_CLASSES) + " | mean | runs |",
             "|" + "---|" * (len(SIM_CLASSES) + 3)]  # fmt: skip
    for row in ROW_NAMES.values():
        runs = results.get(row)
        if not runs:
            continue
        cells = []
        for c in [*SIM_CLASSES, None]:
            v = np.array([np.mean(list(r["f1"].values())) if c is None else r["f1"].get(c, np.nan) for r in runs])
            cells.append(f"{v.mean():.3f}" + (f" ± {v.std(ddof=1):.3f}" if len(v) > 1 else ""))
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {len(runs)} |")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text("\n".join(lines) + "\n")
    a.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
