#!/usr/bin/env python
"""Reproduce the paper's ablation (Li, Dey et al., ISBI 2021, Table 1) with the pointseg CLI.

For each data set this driver

1. lays out a fixed split (train / val / test) in ``WORK/<dataset>/``,
2. simulates one click per object with ``pointseg annotate-import --from-masks --jitter``
   (for the multi-class H&E tiles the class of each click is then read from ``<name>.classes.tif``),
3. trains the rows pCE, pCE+Img, pCE+Obj, Gauss Obj, pCE+Img+Obj (ours) and full supervision for
   every seed with ``pointseg train``, exports with ``pointseg export``,
4. segments the test split with ``pointseg segment`` and scores it with ``pointseg evaluate``,
5. writes a Markdown table (mean ± std over seeds) with the exact commands that produced it.

Only the public CLI is used (as subprocesses), so the results are what a user would get.

Data sets
---------
``synth3d``   ``pointseg demo-data --kind 3d-nuclei`` (3D U-Net), 14 volumes; sorted by name, the
              first 10 train, the next 2 validation, the last 2 test.
``bbbc007``   a folder of the 14 BBBC007 images with ``<name>.labels.tif`` instance masks, given
              with ``--bbbc007 DIR`` or the ``POINTSEG_BBBC007`` environment variable (FPN).
              Sorted by name and numbered ``i = 0..13``: ``i % 7 == 5`` validation, ``i % 7 == 6``
              test, the other 10 train, so both acquisition series are in every part.
``synth-he``  ``pointseg demo-data --kind 2d-he`` (FPN, 3 classes), 14 tiles split as ``synth3d``.
``synth-sim`` ``pointseg demo-data --kind 3d-sim`` (3D U-Net, 3 granule classes), 8 volumes of
              24x192x192 voxels: 4 train, 2 validation, 2 test (the demo's split by cell); trained
              with the paper's SIM preprocessing (``--equalize``; ``--diffuse`` tuned; the voxel size in
              the files reaches the growing). For the 3-D sets, clicks and classes as for H&E.

With ``--quick`` the generated data sets have 5 images (3 train / 1 validation / 1 test);
BBBC007 keeps its split.

Rows
----
``pCE`` (``--losses pce``), ``pCE+Img`` (``pce,img``), ``pCE+Obj`` (``pce,obj``), ``Gauss Obj``
(``pce,img,obj`` with ``--objectness gauss``: ours with Gaussian blobs instead of the seeded-region-
growing objectness), ``pCE+Img+Obj`` (ours, ``pce,img,obj``), ``Full`` (``--masks``: dense
cross-entropy on the ground-truth masks; the upper bound); on request ``Ours (parent cost)``
(``--cost parent``) and ``Ours (img-scale point)`` (``--img-scale point``).

Usage (from the repository root)
--------------------------------
::

    python experiments/reproduce.py --quick --dataset synth3d,synth-he     # smoke test: tiny runs, 1 seed
    python experiments/reproduce.py --dataset bbbc007 --bbbc007 DIR --seeds 0,1,2   # real runs (hours on CPU)
    python experiments/reproduce.py --dataset synth3d --dry-run            # print the commands only

Tuning (``--tune w=5,10,20 --tune beta=1/0.5,1/0.25``) trains ours on seed 0 for every grid point,
picks the flags with the best validation mIoU (``metrics.csv``; the test split is never looked at)
and uses them for every row. ``--train-args`` appends flags to every ``pointseg train`` (after the
data set's own, so they override them). Re-running a subset of ``--rows``/``--seeds`` with the same
settings merges into the earlier results instead of replacing them.

Results go to ``docs/results.md`` (``--quick``: ``WORK/results-quick.md``, so a smoke test never
overwrites real numbers). Per-run JSON is kept in ``WORK/<dataset>/results.json``; the Markdown
file is rebuilt from every data set's JSON present in ``WORK``, so data sets can be run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from protocol import DATASETS, DEFAULT_ROWS, ROOT, ROWS, Experiment, Runner, dataset_dir, parse_grid
from report import machine, merge, relative, same_settings, write_markdown

#: Environment variable naming the BBBC007 folder when --bbbc007 is not given.
BBBC007_ENV = "POINTSEG_BBBC007"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="all", help=f"{', '.join(DATASETS)} or all (comma-separated list ok)")
    p.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                   help="comma-separated subset of: " + ", ".join(ROWS) + " (default: all but 'Ours (parent cost)')")
    p.add_argument("--parent-w", type=float, default=20.0,
                   help="w of the 'Ours (parent cost)' row (that cost needs about 10x the seed cost's w)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (>= 3 for the tables)")
    p.add_argument("--quick", action="store_true", help="tiny data and steps, seed 0 only: a smoke test")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "reproduce",
                   help="working folder (default runs/reproduce in the repository; runs/ is git-ignored)")
    p.add_argument("--out", type=Path, default=None,
                   help="Markdown output (default docs/results.md; --quick: WORK/results-quick.md)")
    p.add_argument("--bbbc007", type=Path, default=os.environ.get(BBBC007_ENV) or None,
                   help=f"folder of the BBBC007 images and <name>.labels.tif masks (default: ${BBBC007_ENV})")
    p.add_argument("--jitter", type=float, default=2.0, help="click jitter in pixels (annotate-import)")
    p.add_argument("--device", default="auto")
    p.add_argument("--train-args", default="",
                   help="extra flags for every `pointseg train`, after the data set's own (so they override "
                   "them), e.g. '--w 10' or '--epochs 4'")
    p.add_argument("--tune", action="append", default=[], metavar="NAME=V1,V2",
                   help="grid-search a train flag on the validation split (ours, seed 0) before the table; repeat "
                   "for a grid, write commas inside a value as '/': --tune w=5,10,20 --tune beta=1/0.5,1/0.25")
    p.add_argument("--keep-checkpoints", action="store_true", help="keep best.pt/last.pt and caches of every run")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--prepare-only", action="store_true", help="only lay out the split and simulate points")
    a = p.parse_args(argv)
    a.work = a.work.resolve()
    a.datasets = DATASETS if a.dataset == "all" else tuple(a.dataset.split(","))
    a.row_list = tuple(r.strip() for r in a.rows.split(","))
    for name, values, valid in (("dataset", a.datasets, DATASETS), ("row", a.row_list, ROWS)):
        bad = [v for v in values if v not in valid]
        if bad:
            p.error(f"unknown {name} {bad}; choose from {', '.join(valid)}")
    if "bbbc007" in a.datasets and a.bbbc007 is None:
        p.error(f"the bbbc007 data set needs --bbbc007 DIR or the {BBBC007_ENV} environment variable")
    a.seed_list = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    try:
        a.grid = parse_grid(a.tune)
    except ValueError as exc:
        p.error(str(exc))
    return a


def run_dataset(exp: Experiment, a: argparse.Namespace, out: Path, host: str) -> int:
    """Every row and seed of one data set; results saved after every run. Returns the number of failures."""
    t0 = time.perf_counter()
    exp.prepare(bbbc007=a.bbbc007)
    exp.simulate_points(jitter=a.jitter)
    if a.prepare_only:
        return 0
    tuning: list[dict] = []
    if a.grid:
        chosen, tuning = exp.tune(a.grid)
        print(f"tuned on validation: {' '.join(chosen) or 'no usable trial'}", flush=True)
        exp.extra += chosen
    res = {
        "dataset": exp.dataset, "train_args": exp.train_args, "tuning": tuning, "title": exp.setup.title,
        "quick": exp.quick, "seeds": a.seed_list, "classes": exp.split["classes"],
        "split": {k: exp.split[k] for k in ("train", "val", "test")}, "rows": {},
    }  # fmt: skip
    previous = exp.base / "results.json"
    old = None if a.dry_run or not previous.exists() else json.loads(previous.read_text())
    if old and not same_settings(old, res):
        print(f"settings changed: {previous} will be replaced, not merged", flush=True)
    failures = 0
    # seed-major order, results saved after every run: a run cut short still leaves every row's
    # first seeds in results.json and the Markdown table
    for seed in a.seed_list:
        for row in a.row_list:
            try:
                r = exp.run_one(row, seed)
            except RuntimeError as exc:
                print(f"  !! {exc}", flush=True)
                failures += 1
                r = {"error": str(exc)}
            res["rows"].setdefault(row, []).append({"seed": seed, **r})
            if a.dry_run:
                continue
            res.update(commands=exp.run.commands, work=relative(a.work), machine=host,
                       elapsed_s=time.perf_counter() - t0)  # fmt: skip
            previous.write_text(json.dumps(merge(old, res), indent=1))
            write_markdown(a.work, out, a.quick)
    return failures


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    out = a.out or (a.work / "results-quick.md" if a.quick else ROOT / "docs" / "results.md")
    host = "" if a.dry_run else machine()
    failures = 0
    for ds in a.datasets:
        base = dataset_dir(a.work, ds, a.quick)
        exp = Experiment(
            dataset=ds, base=base, run=Runner(base / "logs", a.work, dry_run=a.dry_run), quick=a.quick,
            device=a.device, extra=shlex.split(a.train_args), keep=a.keep_checkpoints, parent_w=a.parent_w,
        )  # fmt: skip
        failures += run_dataset(exp, a, out, host)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
