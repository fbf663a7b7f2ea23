#!/usr/bin/env python
"""Reproduce the paper's ablation (Li, Dey et al., ISBI 2021, Table 1) with the pointseg CLI.

For each data set this driver

1. prepares a fixed split (train / val / test by sorted name) in ``WORK/<dataset>/``,
2. simulates one click per object with ``pointseg annotate-import --from-masks --jitter``
   (for the multi-class H&E tiles the class of each click is then read from ``<name>.classes.tif``),
3. trains the rows pCE, pCE+Img, pCE+Obj, Gauss Obj, pCE+Img+Obj (ours) and full supervision for
   every seed with ``pointseg train``, exports with ``pointseg export``,
4. segments the test split with ``pointseg segment`` and scores it with ``pointseg evaluate``,
5. writes a Markdown table (mean ± std over seeds) with the exact commands that produced it.

Only the public CLI is used (as subprocesses), so the results are what a user would get.

Data sets
---------
``synth3d``   ``pointseg demo-data --kind 3d-nuclei`` (3D U-Net), 14 volumes: 10 train / 2 val / 2 test.
``bbbc007``   ``/work/shared/data/bbbc007`` (``--bbbc007 DIR``), 14 images with ``<name>.labels.tif``:
              sorted by name, the first 10 train, the next 2 val, the last 2 test (FPN).
``synth-he``  ``pointseg demo-data --kind 2d-he`` (FPN, 3 classes), 14 tiles: 10 / 2 / 2.

Rows
----
``pCE`` (``--losses pce``), ``pCE+Img`` (``pce,img``), ``pCE+Obj`` (``pce,obj``), ``Gauss Obj``
(``pce,img,obj`` with ``--objectness gauss``: ours with Gaussian blobs instead of the seeded-region-
growing objectness), ``pCE+Img+Obj`` (ours, ``pce,img,obj``), ``Full`` (``--masks``: dense
cross-entropy on the ground-truth masks; the upper bound).

Usage
-----
::

    python benchmarks/reproduce.py --quick                         # smoke test: tiny runs, 1 seed, all data sets
    python benchmarks/reproduce.py --dataset bbbc007 --seeds 0,1,2  # real runs (hours on CPU)
    python benchmarks/reproduce.py --dataset synth3d --dry-run      # print the commands only

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
import csv
import itertools
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg_cli.demo import HE_CLASSES

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("synth3d", "bbbc007", "synth-he")
ROWS = ("pCE", "pCE+Img", "pCE+Obj", "Gauss Obj", "pCE+Img+Obj", "Ours (parent cost)", "Full")
#: Rows run unless --rows says otherwise (the paper's six).
DEFAULT_ROWS = ("pCE", "pCE+Img", "pCE+Obj", "Gauss Obj", "pCE+Img+Obj", "Full")
ROW_ARGS = {
    "pCE": ["--losses", "pce"],
    "pCE+Img": ["--losses", "pce,img"],
    "pCE+Obj": ["--losses", "pce,obj"],
    "Gauss Obj": ["--losses", "pce,img,obj", "--objectness", "gauss"],
    "pCE+Img+Obj": ["--losses", "pce,img,obj"],
    # ours with issue 3's objectness step cost (difference to the parent pixel) instead of the default
    # seed cost; its w comes from --parent-w (that cost's distances are ~10x smaller)
    "Ours (parent cost)": ["--losses", "pce,img,obj", "--cost", "parent"],
    "Full": None,  # filled with --masks DIR per data set
}
#: The paper's numbers (Table 1), for the notes under each table.
PAPER = {
    "synth3d": "BBBC024 IoU: pCE 0.32, ours 0.67, full 0.88",
    "synth-he": "CoNSeP mIoU: pCE 0.46 < pCE+Obj 0.50 < pCE+Img 0.55 ≈ Gauss Obj 0.55 < ours 0.555 < full 0.58",
    "bbbc007": "not in the paper",
}


@dataclass(frozen=True)
class Setup:
    """How one data set is trained: architecture flags and budget (full and quick)."""

    name: str
    title: str
    n: tuple[int, int, int]  # train, val, test
    train_args: tuple[str, ...]
    quick_args: tuple[str, ...]
    size: str = ""
    quick_size: str = ""


def _flags(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FPN_TRAIN = _flags("--arch fpn --encoder resnet18 --crop 128,128 --batch-size 16 --epochs 20 --steps-per-epoch 25")
_FPN_QUICK = _flags("--arch fpn --encoder resnet18 --crop 64,64 --batch-size 2 --epochs 1 --steps-per-epoch 3")

SETUPS = {
    "synth3d": Setup(
        "synth3d",
        "Synthetic 3D nuclei (3D U-Net)",
        (10, 2, 2),
        _flags(
            "--arch unet3d --base-filters 16 --filter-growth 2 --crop 32,64,64 --batch-size 4 "
            "--epochs 20 --steps-per-epoch 25"
        ),
        _flags("--arch unet3d --base-filters 4 --crop 16,32,32 --batch-size 2 --epochs 1 --steps-per-epoch 3"),
        size="48x128x128",
        quick_size="24x64x64",
    ),
    "bbbc007": Setup("bbbc007", "BBBC007 fluorescence nuclei, 2D (FPN)", (10, 2, 2), _FPN_TRAIN, _FPN_QUICK),
    "synth-he": Setup(
        "synth-he",
        "Synthetic 2D H&E, 3 nucleus classes (FPN)",
        (10, 2, 2),
        _FPN_TRAIN,
        _FPN_QUICK,
        size="256x256",
        quick_size="128,128",
    ),
}


# ----------------------------------------------------------------------------------------- running
@dataclass
class Runner:
    """Runs ``pointseg`` subcommands, logs them, and remembers the exact command lines."""

    log_dir: Path
    work: Path
    dry_run: bool = False
    commands: list[str] = field(default_factory=list)

    def _show(self, arg: str) -> str:
        """Shell-quoted argument with the working folder written as ``$WORK`` (portable commands)."""
        prefix = str(self.work.resolve())
        if arg.startswith(prefix):
            return '"$WORK' + arg[len(prefix) :] + '"'
        return shlex.quote(arg)

    def __call__(self, *args: str, name: str) -> subprocess.CompletedProcess | None:
        shown = "pointseg " + " ".join(self._show(str(a)) for a in args)
        self.commands.append(shown)
        print(f"$ {shown}", flush=True)
        if self.dry_run:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pointseg_cli", "--quiet", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        (self.log_dir / f"{name}.log").write_text(f"$ {shown}\n{proc.stdout}\n{proc.stderr}")
        print(f"  -> exit {proc.returncode} in {time.perf_counter() - t0:.1f} s", flush=True)
        if proc.returncode != 0:
            text = [ln.strip(" │╭╮╰╯─") for ln in (proc.stderr or proc.stdout).splitlines()]
            last = next((ln for ln in reversed(text) if ln), "no output")
            raise RuntimeError(f"{name} failed (exit {proc.returncode}): {last} (see {self.log_dir / name}.log)")
        return proc


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        dst.unlink()
    try:
        dst.symlink_to(src.resolve())
    except OSError:
        shutil.copy2(src, dst)


# ----------------------------------------------------------------------------------------- data
def dataset_dir(work: Path, ds: str, quick: bool) -> Path:
    """Quick runs live apart from real ones, so a smoke test never mixes with or overwrites them."""
    return work / (f"{ds}-quick" if quick else ds)


def prepare(ds: str, base: Path, run: Runner, *, quick: bool, bbbc007: Path) -> dict:
    """Lay out images/ (train+val), test/, inst/ (train+val instance masks), masks/ and gt/ (semantic)."""
    from pointseg_cli.io.images import image_stem, read_image, write_tiff

    setup = SETUPS[ds]
    n_train, n_val, n_test = (3, 1, 1) if quick else setup.n
    if ds == "bbbc007":
        src = bbbc007
        n_train, n_val, n_test = setup.n  # the fixed 10/2/2 split, also in quick mode
    else:
        src = base / "raw"
        kind = "3d-nuclei" if ds == "synth3d" else "2d-he"
        size = setup.quick_size if quick else setup.size
        run(
            "demo-data",
            src,
            "--kind",
            kind,
            "--n",
            str(n_train + n_val + n_test),
            "--size",
            size,
            "--seed",
            "2021",
            name=f"{ds}-demo-data",
        )
    classes = list(HE_CLASSES) if ds == "synth-he" else ["nucleus"]
    if run.dry_run:
        return {"train": [], "val": [], "test": [], "classes": classes}
    images = sorted(p for p in src.glob("*.tif") if "." not in image_stem(p))
    if len(images) < n_train + n_val + n_test:
        raise RuntimeError(f"{src} holds {len(images)} images; the split needs {n_train + n_val + n_test}")
    stems = [image_stem(p) for p in images]
    if ds == "bbbc007":
        # the split of docs/training.md and models/train_defaults.sh: by sorted index i, i % 7 == 5
        # validation, i % 7 == 6 test, the rest train (both acquisition series in every part)
        split = {
            "train": [s for i, s in enumerate(stems) if i % 7 < 5],
            "val": [s for i, s in enumerate(stems) if i % 7 == 5],
            "test": [s for i, s in enumerate(stems) if i % 7 == 6],
        }
    else:
        split = {
            "train": stems[:n_train],
            "val": stems[n_train : n_train + n_val],
            "test": stems[n_train + n_val : n_train + n_val + n_test],
        }
    if (src / "classes.txt").exists() and (src / "classes.txt").read_text().split() != classes:
        raise RuntimeError(f"{src / 'classes.txt'} lists other classes than {classes}")
    for sub in ("images", "test", "inst", "masks", "gt"):  # no stale files from an earlier layout
        shutil.rmtree(base / sub, ignore_errors=True)
    for path, stem in zip(images, stems, strict=True):
        part = "test" if stem in split["test"] else ("images" if stem in split["train"] + split["val"] else None)
        if part is None:
            continue
        _link(path, base / part / path.name)
        inst = src / f"{stem}.labels.tif"
        sem_path = src / f"{stem}.classes.tif"
        labels = read_image(inst)
        sem = read_image(sem_path) if sem_path.exists() else (labels > 0).astype(np.uint8)
        axes = "ZYX" if sem.ndim == 3 else "YX"
        if part == "test" and len(classes) == 1:  # instance ids: evaluate --gt-binary --instances
            _link(inst, base / "gt" / inst.name)
        else:
            out = base / ("gt" if part == "test" else "masks") / f"{stem}.labels.tif"
            out.parent.mkdir(parents=True, exist_ok=True)
            write_tiff(out, sem.astype(np.uint8), axes=axes, compression="zlib")
        if part == "images":
            _link(inst, base / "inst" / inst.name)
    split["classes"] = classes
    (base / "split.json").write_text(json.dumps(split, indent=1))
    return split


def simulate_points(ds: str, base: Path, run: Runner, split: dict, *, jitter: float) -> Path:
    """One jittered click per instance of the train+val masks; per-click class from classes.tif."""
    out = base / "points.csv"
    run(
        "annotate-import",
        "--from-masks",
        str(base / "inst" / "*.labels.tif"),
        "--images",
        base / "images",
        "--jitter",
        str(jitter),
        "--seed",
        "0",
        "--out",
        out,
        name=f"{ds}-points",
    )
    if ds == "synth-he" and not run.dry_run:
        _classes_from_masks(out, base / "raw", split["classes"])
    return out


def _classes_from_masks(points_csv: Path, raw: Path, classes: list[str]) -> None:
    from pointseg_cli.io.images import read_image
    from pointseg_cli.io.points import PointTable, read_points_csv, write_points_csv

    table = read_points_csv(points_csv)
    names = np.asarray(table.class_name, dtype=object).copy()
    for stem in table.stems:
        sel = np.flatnonzero(np.asarray(table.image) == stem)
        cls_img = read_image(raw / f"{stem}.classes.tif")
        yx = table.subset(sel).pixel_coords(2)
        ids = cls_img[yx[:, 0], yx[:, 1]]
        if np.any(ids == 0):
            raise RuntimeError(f"{stem}: {int((ids == 0).sum())} clicks fall on background in classes.tif")
        names[sel] = [classes[i - 1] for i in ids]
    write_points_csv(
        points_csv,
        PointTable(image=table.image, coords=table.coords, class_name=names.astype(str), class_names=tuple(classes)),
    )


# ----------------------------------------------------------------------------------------- experiments
def run_one(
    ds: str,
    row: str,
    seed: int,
    base: Path,
    run: Runner,
    split: dict,
    *,
    quick: bool,
    device: str,
    extra: list[str],
    keep: bool = False,
    parent_w: float = 20.0,
) -> dict:
    """Train, export, segment the test split, evaluate; return the evaluation summary.

    Unless ``keep``, the checkpoints and the objectness cache are deleted once the ONNX model is
    exported (``config.json``, ``metrics.csv``, ``curves.png``, ``model.onnx`` and predictions stay).
    """
    setup = SETUPS[ds]
    slug = "".join(ch if ch.isalnum() else "_" for ch in row.lower()).strip("_")
    rdir = base / "runs" / slug / f"seed{seed}"
    if rdir.exists():
        shutil.rmtree(rdir)
    row_args = ROW_ARGS[row] if row != "Full" else ["--masks", str(base / "masks")]
    if row == "Ours (parent cost)":
        row_args = [*row_args, "--w", f"{parent_w:g}"]
    train_args = list(setup.quick_args if quick else setup.train_args)
    val = ",".join(split["val"]) if split["val"] else None
    run(
        "train",
        base / "points.csv",
        base / "images",
        "--out",
        rdir,
        *train_args,
        *(["--val-images", val, "--val-masks", base / "masks"] if val else []),
        "--classes",
        ",".join(split["classes"]),
        "--seed",
        str(seed),
        "--device",
        device,
        *extra,
        *row_args,  # last, so that --train-args (e.g. a tuned --w) cannot undo a row's own flags
        name=f"{ds}-{rdir.parent.name}-{seed}-train",
    )
    model = rdir / "model.onnx"
    run("export", rdir, "--out", model, name=f"{ds}-{rdir.parent.name}-{seed}-export")
    if not keep and not run.dry_run:  # checkpoints and objectness caches: ~150 MB per FPN run
        for f in ("best.pt", "last.pt"):
            (rdir / f).unlink(missing_ok=True)
        shutil.rmtree(rdir / "cache", ignore_errors=True)
    run(
        "segment",
        base / "test",
        "--model",
        model,
        "--out-dir",
        rdir / "pred",
        "--device",
        device,
        name=f"{ds}-{rdir.parent.name}-{seed}-segment",
    )
    report = rdir / "evaluate.json"
    run(
        "evaluate",
        rdir / "pred",
        base / "gt",
        "--classes",
        ",".join(split["classes"]) or "nucleus",
        # one object class: gt/ holds instance ids, so instance F1 is scored too
        *(["--gt-binary", "--instances"] if len(split["classes"]) == 1 else []),
        "--json",
        report,
        name=f"{ds}-{rdir.parent.name}-{seed}-evaluate",
    )
    if run.dry_run:
        return {}
    return summarize_eval(json.loads(report.read_text()), split["classes"])


def parse_grid(specs: list[str]) -> list[list[str]]:
    """``["w=5,10", "beta=1/0.5,1/0.25"]`` -> every combination as train flags (``/`` stands for ``,``)."""
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if not name or not values:
            raise ValueError(f"--tune expects NAME=V1,V2,...; got {spec!r}")
        axes.append([[f"--{name.strip()}", v.strip().replace("/", ",")] for v in values.split(",")])
    return [sum(combo, []) for combo in itertools.product(*axes)] if axes else []


def tune(
    ds: str,
    base: Path,
    run: Runner,
    split: dict,
    grid: list[list[str]],
    *,
    quick: bool,
    device: str,
    extra: list[str],
    keep: bool = False,
) -> tuple[list[str], list[dict]]:
    """Train ours (pCE+Img+Obj, seed 0) per grid point; pick the flags with the best validation mIoU.

    Only the validation images are scored (``metrics.csv``, best epoch); the test split is not touched.
    """
    setup = SETUPS[ds]
    trials = []
    for flags in grid:
        tag = "_".join(f.lstrip("-").replace(",", "-") for f in flags)
        rdir = base / "tune" / tag
        shutil.rmtree(rdir, ignore_errors=True)
        try:
            run("train", base / "points.csv", base / "images", "--out", rdir,
                *(setup.quick_args if quick else setup.train_args), *ROW_ARGS["pCE+Img+Obj"],
                "--val-images", ",".join(split["val"]), "--val-masks", base / "masks", "--classes",
                ",".join(split["classes"]), "--seed", "0", "--device", device, *extra, *flags,
                name=f"{ds}-tune-{tag}")  # fmt: skip
            score = float("nan") if run.dry_run else _best_val_miou(rdir / "metrics.csv")
            if not keep:
                for f in ("best.pt", "last.pt"):
                    (rdir / f).unlink(missing_ok=True)
                shutil.rmtree(rdir / "cache", ignore_errors=True)
        except RuntimeError as exc:
            print(f"  !! {exc}", flush=True)
            score = float("nan")
        trials.append({"flags": flags, "val_miou": score})
    scored = [t for t in trials if np.isfinite(t["val_miou"])]
    best = max(scored, key=lambda t: t["val_miou"])["flags"] if scored else []
    return best, trials


def _best_val_miou(metrics_csv: Path) -> float:
    with metrics_csv.open() as fh:
        values = [float(r["val_miou_objects"]) for r in csv.DictReader(fh) if r.get("val_miou_objects")]
    return max(values) if values else float("nan")


def summarize_eval(data: dict, classes: list[str]) -> dict:
    """Pull per-class IoU and mIoU (objects) of the whole test split out of ``evaluate --json``."""
    overall = data.get("overall", data)
    iou = overall.get("iou", {})
    if isinstance(iou, list):  # [background, class 1, ...]
        iou = dict(zip(["background", *classes], iou, strict=False))
    inst = overall.get("instances") or {}
    return {
        "iou": {c: _num(iou.get(c)) for c in classes},
        "miou": _num(overall.get("miou_objects", overall.get("miou"))),
        "f1": _num(inst.get("f1")),
    }


def _num(v: object) -> float:
    return float("nan") if v is None else float(v)


# ----------------------------------------------------------------------------------------- report
def _fmt(values: list[float]) -> str:
    v = np.asarray([x for x in values if np.isfinite(x)], float)
    if v.size == 0:
        return "—"
    return f"{v.mean():.3f}" if v.size == 1 else f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"


def dataset_section(res: dict) -> str:
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
        lines += [
            "",
            "Tuned on the validation split (ours, seed 0; best epoch's validation mIoU):",
            "",
            "| flags | val mIoU |",
            "|---|---|",
        ]
        lines += [f"| `{' '.join(t['flags'])}` | {t['val_miou']:.3f} |" for t in res["tuning"]]
    errors = [
        f"- {row} seed {r['seed']}: {r['error']}" for row in ROWS for r in res["rows"].get(row, []) if "error" in r
    ]
    lines += [
        "",
        f"Paper: {PAPER[res['dataset']]}.",
        "",
        f"Machine: {res['machine']}; {res['elapsed_s'] / 60:.1f} min for this table.",
    ]
    if errors:
        lines += ["", "Failed runs:", *errors]
    lines += [
        "",
        "<details><summary>Commands</summary>",
        "",
        "```bash",
        f"WORK={res['work']}",
        *res["commands"],
        "```",
        "",
        "</details>",
        "",
    ]
    return "\n".join(lines)


def write_markdown(work: Path, out: Path, quick: bool) -> None:
    parts = [
        "# Results: the paper's ablation on data we have",
        "",
        "Produced by `benchmarks/reproduce.py` (see its docstring for the protocol). IoU of the object "
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


def _merge(old: dict | None, res: dict) -> dict:
    """Keep rows of an earlier run with the same settings that this run did not redo (re-running one row)."""
    if not old:
        return res
    same = all(old.get(k) == res[k] for k in ("train_args", "split", "classes", "quick"))
    if not same:
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


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def machine() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{platform.node()} ({os.cpu_count()} CPU cores, {cuda}), torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="all", help=f"{', '.join(DATASETS)} or all (comma-separated list ok)")
    p.add_argument(
        "--rows",
        default=",".join(DEFAULT_ROWS),
        help="comma-separated subset of: " + ", ".join(ROWS) + " (default: all but 'Ours (parent cost)')",
    )
    p.add_argument(
        "--parent-w",
        type=float,
        default=20.0,
        help="w of the 'Ours (parent cost)' row (that cost needs about 10x the seed cost's w)",
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (>= 3 for the tables)")
    p.add_argument("--quick", action="store_true", help="tiny data and steps, seed 0 only: a smoke test")
    p.add_argument(
        "--work", type=Path, default=ROOT / "runs" / "reproduce", help="working folder (runs/ is git-ignored)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Markdown output (default docs/results.md; --quick: WORK/results-quick.md)",
    )
    p.add_argument("--bbbc007", type=Path, default=Path("/work/shared/data/bbbc007"))
    p.add_argument("--jitter", type=float, default=2.0, help="click jitter in pixels (annotate-import)")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--train-args",
        default="",
        help="extra flags for every `pointseg train`, after the data set's own (so they override them), "
        "e.g. '--w 10' or '--epochs 4'",
    )
    p.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="grid-search a train flag on the validation split (ours, seed 0) before the table; repeat for a "
        "grid, write commas inside a value as '/': --tune w=5,10,20 --tune beta=1/0.5,1/0.25",
    )
    p.add_argument("--keep-checkpoints", action="store_true", help="keep best.pt/last.pt and caches of every run")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--prepare-only", action="store_true", help="only lay out the split and simulate points")
    a = p.parse_args(argv)
    a.work = a.work.resolve()
    datasets = DATASETS if a.dataset == "all" else tuple(a.dataset.split(","))
    rows = tuple(r.strip() for r in a.rows.split(","))
    for name, values, valid in (("dataset", datasets, DATASETS), ("row", rows, ROWS)):
        bad = [v for v in values if v not in valid]
        if bad:
            p.error(f"unknown {name} {bad}; choose from {', '.join(valid)}")
    seeds = [0] if a.quick else [int(s) for s in a.seeds.split(",")]
    try:
        grid = parse_grid(a.tune)
    except ValueError as exc:
        p.error(str(exc))
    out = a.out or (a.work / "results-quick.md" if a.quick else ROOT / "docs" / "results.md")
    failures = 0
    host = "" if a.dry_run else machine()
    for ds in datasets:
        t0 = time.perf_counter()
        base = dataset_dir(a.work, ds, a.quick)
        run = Runner(base / "logs", a.work, dry_run=a.dry_run)
        split = prepare(ds, base, run, quick=a.quick, bbbc007=a.bbbc007)
        simulate_points(ds, base, run, split, jitter=a.jitter)
        if a.prepare_only:
            continue
        extra = shlex.split(a.train_args)
        tuning: list[dict] = []
        if grid:
            chosen, tuning = tune(
                ds, base, run, split, grid, quick=a.quick, device=a.device, extra=extra, keep=a.keep_checkpoints
            )
            print(f"tuned on validation: {' '.join(chosen) or 'no usable trial'}", flush=True)
            extra += chosen
        train_args = [*(SETUPS[ds].quick_args if a.quick else SETUPS[ds].train_args), *extra]
        res = {
            "dataset": ds,
            "train_args": train_args,
            "tuning": tuning,
            "title": SETUPS[ds].title,
            "quick": a.quick,
            "seeds": seeds,
            "classes": split["classes"],
            "split": {k: split[k] for k in ("train", "val", "test")},
            "rows": {},
        }
        previous = base / "results.json"
        old = None if a.dry_run or not previous.exists() else json.loads(previous.read_text())
        if old and not all(old.get(k) == res[k] for k in ("train_args", "split", "classes", "quick")):
            print(f"settings changed: {previous} will be replaced, not merged", flush=True)
        # seed-major order, results saved after every run: a run cut short still leaves every row's
        # first seeds in results.json and the Markdown table
        for seed in seeds:
            for row in rows:
                try:
                    r = run_one(
                        ds,
                        row,
                        seed,
                        base,
                        run,
                        split,
                        quick=a.quick,
                        device=a.device,
                        extra=extra,
                        keep=a.keep_checkpoints,
                        parent_w=a.parent_w,
                    )
                except RuntimeError as exc:
                    print(f"  !! {exc}", flush=True)
                    failures += 1
                    r = {"error": str(exc)}
                res["rows"].setdefault(row, []).append({"seed": seed, **r})
                if a.dry_run:
                    continue
                res.update(commands=run.commands, work=_rel(a.work), machine=host, elapsed_s=time.perf_counter() - t0)
                previous.write_text(json.dumps(_merge(old, res), indent=1))
                write_markdown(a.work, out, a.quick)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
