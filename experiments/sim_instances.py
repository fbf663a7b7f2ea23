#!/usr/bin/env python
"""Per-class instance F1 of the SIM ablation runs (docs/results.md, synthetic SIM section).

For every run of ``reproduce.py --dataset synth-sim`` found under the given working folders
(``WORK/synth-sim/runs/<row>/seed<N>/model.onnx``), the test volumes are segmented again with
``pointseg segment --instances distance`` (the runs' models have no centre head) and each class's
predicted objects are matched one to one with the ground-truth granules of that class at IoU >= 0.5
(``pointseg_cli.metrics.match_instances_per_class``; ground truth: the demo's instance ids and
class map). Counts are pooled over the test volumes; the table gives mean ± std over seeds.

``--model NAME=PATH`` scores one more model (e.g. the registered ``granules-3d-sim``) on the test
volumes of ``--test``/``--raw`` (default: the first WORK folder's), and ``--instances`` picks the
instance method (``centers`` for a model with a centre head).

Usage (from the repository root)::

    python experiments/sim_instances.py runs/reproduce [more WORK folders ...] --out runs/sim-instances.md
    python experiments/sim_instances.py --model granules-3d-sim=models/granules-3d-sim.onnx --instances centers \
        --test runs/granules/test --raw runs/granules/sim --out runs/granules/instances.md
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


def score_run(model: Path, test: Path, raw: Path, pred: Path, method: str = "distance") -> dict[str, float]:
    """Segment the test volumes with ``model``; per-class instance F1 pooled over the volumes."""
    subprocess.run(
        [sys.executable, "-m", "pointseg_cli", "--quiet", "segment", str(test), "--model",
         str(model), "--out-dir", str(pred), "--instances", method, "--overwrite"],
        check=True,
    )  # fmt: skip
    per_class: dict[int, list] = {}
    for image in sorted(test.glob("*.tif")):
        stem = image.name[: -len(".tif")]
        scores = match_instances_per_class(
            read_image(pred / f"{stem}.instances.tif"), read_image(_gt_instances(raw, stem)),
            read_image(pred / f"{stem}.labels.tif"), read_image(raw / f"{stem}.classes.tif"),
        )  # fmt: skip
        for c, s in scores.items():
            per_class.setdefault(c, []).append(s)
    return {SIM_CLASSES[c - 1]: sum_instance_scores(v).f1 for c, v in sorted(per_class.items()) if c >= 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("work", nargs="*", type=Path, help="working folders of reproduce.py (holding synth-sim/)")
    p.add_argument("--out", type=Path, required=True, help="Markdown table to write (JSON beside it)")
    p.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="one more model to score")
    p.add_argument("--test", type=Path, help="test volumes for --model (default: WORK/synth-sim/test)")
    p.add_argument("--raw", type=Path, help="ground truth: <stem>.masks.tif, .classes.tif (WORK/synth-sim/raw)")
    p.add_argument("--instances", default="distance", choices=("distance", "centers", "components"))
    a = p.parse_args(argv)
    if not a.work and not a.model:
        p.error("give WORK folders and/or --model NAME=PATH")
    if a.model and not a.work and (a.test is None or a.raw is None):
        p.error("--model without a WORK folder needs --test and --raw")
    results: dict[str, list[dict]] = {}
    for work in a.work:
        base = work / "synth-sim"
        for model in sorted(base.glob("runs/*/seed*/model.onnx")):
            row = ROW_NAMES.get(model.parent.parent.name, model.parent.parent.name)
            f1 = score_run(model, base / "test", base / "raw", model.parent / "pred-instances", a.instances)
            results.setdefault(row, []).append({"seed": int(model.parent.name[4:]), "f1": f1})
            print(row, model.parent.name, {k: round(v, 3) for k, v in f1.items()}, flush=True)
    for item in a.model:
        name, _, path = item.partition("=")
        if not path:
            p.error(f"--model wants NAME=PATH; got {item!r}")
        test = a.test or a.work[0] / "synth-sim" / "test"
        raw = a.raw or a.work[0] / "synth-sim" / "raw"
        f1 = score_run(Path(path), test, raw, a.out.parent / f"pred-{name}", a.instances)
        results.setdefault(name, []).append({"seed": 0, "f1": f1})
        print(name, {k: round(v, 3) for k, v in f1.items()}, flush=True)
    lines = ["| row | " + " | ".join(f"F1 {c}" for c in SIM_CLASSES) + " | mean | runs |",
             "|" + "---|" * (len(SIM_CLASSES) + 3)]  # fmt: skip
    for row in [*ROW_NAMES.values(), *(m.partition("=")[0] for m in a.model)]:
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
