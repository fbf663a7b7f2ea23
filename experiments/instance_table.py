#!/usr/bin/env python
"""Instance tables (docs/results.md, "Objects"): how well each method separates touching objects.

For each data set (``synth3d``, ``bbbc007``, ``synth-he``; the split, clicks and budget of
``reproduce.py``) and each seed, two networks are trained with the public CLI:

* **ours**: ``pointseg train`` from the clicks with the centre head (``--losses pce,img,obj,center``);
* **full**: ``pointseg train --masks`` (dense supervision; the centre head learns from the instance
  masks, the upper bound).

The test split is segmented with ``pointseg segment --instances M`` and scored against the ground
-truth instances (one-to-one matching at IoU 0.5: precision, recall, F1, PQ; DSB AP over IoU
0.5:0.95; foreground IoU). Rows:

``Components``        connected components of our class map (``--instances components``)
``Distance WS``       distance-transform watershed of our class map (``--instances distance``)
``Otsu + distance``   the classic pipeline without training: Gaussian σ=1, Otsu threshold, holes
                      filled, distance-transform watershed; its ``min_distance`` is chosen on the
                      validation images (H&E: on the haematoxylin channel)
``Ours (centres)``    the centre head's peaks as markers (``--instances centers``)
``Full (centres)``    the same with the network trained on the masks

Counts are pooled over the test images; the table gives mean ± std over seeds. With several
classes, objects are also matched class by class (per-class F1; the classic pipeline has no classes).

Usage (from the repository root)::

    python experiments/instance_table.py --dataset synth3d,bbbc007,synth-he --bbbc007 DIR --seeds 0,1,2
    python experiments/instance_table.py --quick --dataset synth3d        # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from protocol import ROOT, Experiment, Runner, dataset_dir

from pointseg_cli.io.images import read_image
from pointseg_cli.metrics import InstanceScores, match_instances, match_instances_per_class, sum_instance_scores

DATASETS = ("synth3d", "bbbc007", "synth-he")
METHODS = {"Components": "components", "Distance WS": "distance", "Ours (centres)": "centers"}
ROWS = ("Components", "Distance WS", "Otsu + distance", "Ours (centres)", "Full (centres)")
OTSU_MIN_DISTANCE = (2, 3, 5, 7, 10, 14, 20)


# ------------------------------------------------------------------------------------ ground truth
def gt_paths(exp: Experiment, stem: str, bbbc007: Path | None) -> tuple[Path, Path | None]:
    """Instance ids and (several classes) the class map of one image."""
    src = bbbc007 if exp.dataset == "bbbc007" else exp.base / "raw"
    inst = src / f"{stem}.masks.tif"
    inst = inst if inst.is_file() else src / f"{stem}.labels.tif"
    cls = src / f"{stem}.classes.tif"
    return inst, (cls if len(exp.classes) > 1 and cls.is_file() else None)


def score_images(
    pairs: list[tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]], n_classes: int
) -> dict:
    """Pooled scores of ``(pred ids, pred classes, gt ids, gt classes)`` per image."""
    overall: list[InstanceScores] = []
    per_class: dict[int, list[InstanceScores]] = {}
    inter = union = 0
    for pred, pcls, gt, gcls in pairs:
        overall.append(match_instances(pred, gt))
        inter += int(np.count_nonzero((pred > 0) & (gt > 0)))
        union += int(np.count_nonzero((pred > 0) | (gt > 0)))
        if n_classes > 1 and pcls is not None and gcls is not None:
            for c, s in match_instances_per_class(pred, gt, pcls, gcls).items():
                per_class.setdefault(c, []).append(s)
    total = sum_instance_scores(overall).to_dict()
    total["fg_iou"] = inter / union if union else float("nan")
    total["class_f1"] = {str(c): sum_instance_scores(v).f1 for c, v in sorted(per_class.items())}
    return total


# ------------------------------------------------------------------------------------ classic baseline
def otsu_instances(image: np.ndarray, *, rgb: bool, min_distance: int) -> np.ndarray:
    """Gaussian σ=1, Otsu, holes filled, distance-transform watershed (markers: distance maxima)."""
    from scipy import ndimage as ndi
    from skimage.color import rgb2hed
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian, threshold_otsu
    from skimage.segmentation import watershed

    img = rgb2hed(image[..., :3])[..., 0] if rgb else image.astype(np.float32)
    img = gaussian(img, sigma=1.0)
    fg = ndi.binary_fill_holes(img > threshold_otsu(img))
    comp, _ = ndi.label(fg)
    dist = ndi.distance_transform_edt(fg)
    peaks = peak_local_max(dist, min_distance=min_distance, labels=comp, exclude_border=False)
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg).astype(np.int32)


def otsu_row(exp: Experiment, bbbc007: Path | None) -> tuple[dict, int]:
    """Choose ``min_distance`` on the validation images, then score the test images once."""
    rgb = exp.dataset == "synth-he"

    def pairs(stems: list[str], md: int) -> list:
        out = []
        for stem in stems:
            image = read_image(next((exp.base / ("test" if stem in exp.split["test"] else "images")).glob(f"{stem}.*")))
            gt_inst, _ = gt_paths(exp, stem, bbbc007)
            out.append((otsu_instances(np.asarray(image), rgb=rgb, min_distance=md), None,
                        np.asarray(read_image(gt_inst)), None))  # fmt: skip
        return out

    val = {md: score_images(pairs(exp.split["val"], md), 1)["f1"] for md in OTSU_MIN_DISTANCE}
    best = max(val, key=lambda m: val[m])
    print(f"  Otsu min_distance on validation: {val} -> {best}", flush=True)
    return score_images(pairs(exp.split["test"], best), 1), best


def segment_and_score(
    exp: Experiment, model: Path, rdir: Path, methods: dict[str, str], tag: str, bbbc007: Path | None
) -> dict[str, dict]:
    """Segment the test split with each ``--instances`` method of ``methods`` (row -> method) and score."""
    out: dict[str, dict] = {}
    for row, method in methods.items():
        pred = rdir / f"pred-{method}"
        exp.run("segment", exp.base / "test", "--model", model, "--out-dir", pred, "--instances", method,
                "--overwrite", "--device", exp.device, name=f"{exp.dataset}-{tag}-{method}")  # fmt: skip
        if exp.run.dry_run:
            continue
        pairs = []
        for stem in exp.split["test"]:
            gt_inst, gt_cls = gt_paths(exp, stem, bbbc007)
            pairs.append((np.asarray(read_image(pred / f"{stem}.instances.tif")),
                          np.asarray(read_image(pred / f"{stem}.labels.tif")),
                          np.asarray(read_image(gt_inst)),
                          None if gt_cls is None else np.asarray(read_image(gt_cls))))  # fmt: skip
        out[row] = score_images(pairs, len(exp.classes))
        print(f"  {row} ({tag}): F1 {out[row]['f1']:.3f} fg IoU {out[row]['fg_iou']:.3f}", flush=True)
    return out


def score_model(exp: Experiment, name: str, model: Path, bbbc007: Path | None) -> dict[str, dict]:
    """An already trained model (e.g. a default) scored with every method; rows ``<name> (<method>)``."""
    methods = {f"{name} ({m})": m for m in METHODS.values()}
    return segment_and_score(exp, model.resolve(), exp.base / "models" / name, methods, name, bbbc007)


# ------------------------------------------------------------------------------------ trained rows
def run_seed(exp: Experiment, seed: int, bbbc007: Path | None) -> dict[str, dict]:
    """Train ours and full for one seed; segment the test split with each method; score."""
    out: dict[str, dict] = {}
    for net, flags in (("ours", ["--losses", "pce,img,obj,center"]), ("full", ["--masks", str(exp.base / "masks")])):
        rdir = exp.base / "runs" / net / f"seed{seed}"
        model = rdir / "model.onnx"
        if not model.is_file():
            exp._train(rdir, "--seed", str(seed), *flags, name=f"{exp.dataset}-{net}-{seed}-train")
            exp.run("export", rdir, "--out", model, name=f"{exp.dataset}-{net}-{seed}-export")
            exp._drop_checkpoints(rdir)
        methods = METHODS if net == "ours" else {"Full (centres)": "centers"}
        out.update(segment_and_score(exp, model, rdir, methods, f"{net}-{seed}", bbbc007))
    return out


# ------------------------------------------------------------------------------------ report
def _ms(values: list[float]) -> str:
    v = np.array([x for x in values if x == x], dtype=float)
    if v.size == 0:
        return "–"
    return f"{v.mean():.3f}" + (f" ± {v.std(ddof=1):.3f}" if v.size > 1 else "")


def markdown(res: dict) -> str:
    keys = ("f1", "precision", "recall", "pq", "ap", "fg_iou")
    lines = [f"### {res['title']}", "",
             "| Method | F1@0.5 | Precision | Recall | PQ | AP 0.5:0.95 | Foreground IoU |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in [*ROWS, *(r for r in res["rows"] if r not in ROWS)]:
        runs = res["rows"].get(row, [])
        if runs:
            lines.append(f"| {row} | " + " | ".join(_ms([r[k] for r in runs]) for k in keys) + " |")
    if len(res["classes"]) > 1:
        lines += [
            "",
            "Per-class F1@0.5 (objects matched within their class):",
            "",
            "| Method | " + " | ".join(res["classes"]) + " |",
            "|---|" + "---|" * len(res["classes"]),
        ]
        for row in [*ROWS, *(r for r in res["rows"] if r not in ROWS)]:
            runs = res["rows"].get(row, [])
            if runs and runs[0].get("class_f1"):
                cells = [_ms([r["class_f1"].get(str(c + 1), float("nan")) for r in runs])
                         for c in range(len(res["classes"]))]  # fmt: skip
                lines.append(f"| {row} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Seeds {res['seeds']}; Otsu min_distance {res.get('otsu_min_distance')} (chosen on validation); "
        f"{res.get('elapsed_s', 0) / 60:.1f} min.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default=",".join(DATASETS))
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "instances")
    p.add_argument("--bbbc007", type=Path, default=os.environ.get("POINTSEG_BBBC007") or None)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--train-args", default="", help="flags appended to every pointseg train (as reproduce.py)")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="ROW=MODEL",
        help="also score an exported model (e.g. a default) with every --instances method",
    )
    a = p.parse_args(argv)
    a.work = a.work.resolve()
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    for ds in a.dataset.split(","):
        if ds not in DATASETS:
            p.error(f"unknown dataset {ds}; choose from {', '.join(DATASETS)}")
        base = dataset_dir(a.work, ds, a.quick)
        exp = Experiment(dataset=ds, base=base, run=Runner(base / "logs", a.work, dry_run=a.dry_run), quick=a.quick,
                         device=a.device, extra=shlex.split(a.train_args))  # fmt: skip
        t0 = time.perf_counter()
        exp.prepare(bbbc007=a.bbbc007)
        exp.simulate_points(jitter=2.0)
        res_path = base / "instances.json"
        res = json.loads(res_path.read_text()) if res_path.is_file() else {}
        res.update(dataset=ds, title=exp.setup.title, classes=exp.classes, train_args=exp.train_args)
        res.setdefault("rows", {})
        if not a.dry_run:
            otsu, md = otsu_row(exp, a.bbbc007)
            res["rows"]["Otsu + distance"] = [{"seed": None, **otsu}]
            res["otsu_min_distance"] = md
        for spec in a.model:
            name, _, model = spec.partition("=")
            for row, scores in score_model(exp, name, Path(model), a.bbbc007).items():
                res["rows"][row] = [{"seed": None, **scores}]
        for seed in seeds:
            for row, scores in run_seed(exp, seed, a.bbbc007).items():
                runs = [r for r in res["rows"].get(row, []) if r.get("seed") != seed]
                res["rows"][row] = sorted([*runs, {"seed": seed, **scores}], key=lambda r: r["seed"])
            done = {r["seed"] for r in res["rows"].get("Ours (centres)", [])}
            res.update(seeds=sorted(done), elapsed_s=res.get("elapsed_s", 0) + time.perf_counter() - t0,
                       commands=exp.run.commands)  # fmt: skip
            t0 = time.perf_counter()
            if not a.dry_run:
                res_path.write_text(json.dumps(res, indent=1))
                (base / "instances.md").write_text(markdown(res))
        if not a.dry_run:
            print(markdown(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
