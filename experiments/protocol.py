"""The ablation protocol: data sets, rows, and one :class:`Experiment` per data set.

An :class:`Experiment` knows its data set, working folder, command runner, budget and (after
:meth:`Experiment.prepare`) its split; its methods lay out the data, simulate the clicks, train and
score one row for one seed, and tune flags on the validation split. Only the public ``pointseg``
CLI is called (as subprocesses), so the numbers are what a user would get.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pointseg_cli.demo import HE_CLASSES, SIM_CLASSES

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("synth3d", "bbbc007", "synth-he", "synth-sim")
#: The demo-data kind of each generated data set.
DEMO_KIND = {"synth3d": "3d-nuclei", "synth-he": "2d-he", "synth-sim": "3d-sim"}
#: Object classes of the multi-class data sets (the others have one class, ``nucleus``).
CLASSES = {"synth-he": tuple(HE_CLASSES), "synth-sim": tuple(SIM_CLASSES)}
ROWS = ("pCE", "pCE+Img", "pCE+Obj", "Gauss Obj", "pCE+Img+Obj", "Ours (img-scale point)", "Ours (parent cost)",
        "Full")
#: Rows run unless --rows says otherwise (the paper's six).
DEFAULT_ROWS = ("pCE", "pCE+Img", "pCE+Obj", "Gauss Obj", "pCE+Img+Obj", "Full")
ROW_ARGS = {
    "pCE": ["--losses", "pce"],
    "pCE+Img": ["--losses", "pce,img"],
    "pCE+Obj": ["--losses", "pce,obj"],
    "Gauss Obj": ["--losses", "pce,img,obj", "--objectness", "gauss"],
    "pCE+Img+Obj": ["--losses", "pce,img,obj"],
    # ours with L_img at the balance of its original formulation (docs/results.md, H&E section)
    "Ours (img-scale point)": ["--losses", "pce,img,obj", "--img-scale", "point"],
    # ours with the parent objectness step cost (difference to the parent pixel) instead of the default
    # seed cost; its w comes from --parent-w (that cost's distances are ~10x smaller)
    "Ours (parent cost)": ["--losses", "pce,img,obj", "--cost", "parent"],
    "Full": None,  # --masks DIR of the data set
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
#: The tables weight L_img per crop, the training default for every data set when they were made;
#: today's default with several classes is per point, so the multi-class sets pin crop (a row's own
#: flags and --train-args come later and override it, e.g. "Ours (img-scale point)").
_IMG_CROP = _flags("--img-scale crop")

SETUPS = {
    "synth3d": Setup(
        "synth3d", "Synthetic 3D nuclei (3D U-Net)", (10, 2, 2),
        _flags("--arch unet3d --base-filters 16 --filter-growth 2 --crop 32,64,64 --batch-size 4 "
               "--epochs 20 --steps-per-epoch 25"),
        _flags("--arch unet3d --base-filters 4 --crop 16,32,32 --batch-size 2 --epochs 1 --steps-per-epoch 3"),
        size="48x128x128", quick_size="24x64x64",
    ),
    "bbbc007": Setup("bbbc007", "BBBC007 fluorescence nuclei, 2D (FPN)", (10, 2, 2), _FPN_TRAIN, _FPN_QUICK),
    "synth-he": Setup(
        "synth-he", "Synthetic 2D H&E, 3 nucleus classes (FPN)", (10, 2, 2), _FPN_TRAIN + _IMG_CROP,
        _FPN_QUICK + _IMG_CROP, size="256x256", quick_size="128,128",
    ),
    # the paper's SIM preprocessing: histogram equalisation (network and objectness), anisotropic
    # diffusion before the objectness; the growing takes the voxel size recorded in the files
    "synth-sim": Setup(
        "synth-sim", "Synthetic 3D SIM granules, 3 classes (3D U-Net)", (4, 2, 2),
        _flags("--arch unet3d --base-filters 8 --filter-growth 2 --crop 16,64,64 --batch-size 4 "
               "--epochs 20 --steps-per-epoch 25 --equalize") + _IMG_CROP,
        _flags("--arch unet3d --base-filters 4 --crop 16,32,32 --batch-size 2 --epochs 1 --steps-per-epoch 3 "
               "--equalize --diffuse 2") + _IMG_CROP,
        size="24x192x192", quick_size="16x96x96",
    ),
}  # fmt: skip


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

    def __call__(self, *args: str | Path, name: str) -> subprocess.CompletedProcess | None:
        shown = "pointseg " + " ".join(self._show(str(a)) for a in args)
        self.commands.append(shown)
        print(f"$ {shown}", flush=True)
        if self.dry_run:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "pointseg_cli", "--quiet", *map(str, args)],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
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


def dataset_dir(work: Path, dataset: str, quick: bool) -> Path:
    """Quick runs live apart from real ones, so a smoke test never mixes with or overwrites them."""
    return work / (f"{dataset}-quick" if quick else dataset)


def split_stems(dataset: str, stems: list[str], n: tuple[int, int, int]) -> dict[str, list[str]]:
    """The fixed split of sorted ``stems``.

    BBBC007: by sorted index ``i``, ``i % 7 == 5`` validation, ``i % 7 == 6`` test, the rest train
    (both acquisition series in every part; the split of docs/training.md). The generated data
    sets: the first ``n[0]`` train, the next ``n[1]`` validation, the next ``n[2]`` test.
    """
    if dataset == "bbbc007":
        return {
            "train": [s for i, s in enumerate(stems) if i % 7 < 5],
            "val": [s for i, s in enumerate(stems) if i % 7 == 5],
            "test": [s for i, s in enumerate(stems) if i % 7 == 6],
        }
    a, b, c = n
    return {"train": stems[:a], "val": stems[a : a + b], "test": stems[a + b : a + b + c]}


@dataclass
class Experiment:
    """One data set's experiment: where it lives, how it is run, and (after :meth:`prepare`) its split.

    Attributes
    ----------
    dataset : one of :data:`DATASETS`
    base : its working folder (:func:`dataset_dir`)
    run : the command runner (logs, dry runs, the exact commands for the report)
    quick : tiny data and budget (a smoke test)
    device : ``--device`` of every train and segment
    extra : flags appended to every ``pointseg train`` (after the data set's own)
    keep : keep checkpoints and objectness caches of every run
    parent_w : ``--w`` of the "Ours (parent cost)" row
    split : ``train``/``val``/``test`` stems and ``classes``, set by :meth:`prepare`
    """

    dataset: str
    base: Path
    run: Runner
    quick: bool = False
    device: str = "auto"
    extra: list[str] = field(default_factory=list)
    keep: bool = False
    parent_w: float = 20.0
    split: dict = field(default_factory=dict)

    @property
    def setup(self) -> Setup:
        return SETUPS[self.dataset]

    @property
    def train_args(self) -> list[str]:
        """The data set's training flags, then ``extra``."""
        return [*(self.setup.quick_args if self.quick else self.setup.train_args), *self.extra]

    @property
    def classes(self) -> list[str]:
        return list(CLASSES.get(self.dataset, ("nucleus",)))

    # ------------------------------------------------------------------------------------ data
    def prepare(self, *, bbbc007: Path | None) -> dict:
        """Lay out images/ (train+val), test/, inst/ (train+val instance masks), masks/ and gt/ (semantic)."""
        from pointseg_cli.io.images import image_stem, read_image, write_tiff

        base, n = self.base, ((3, 1, 1) if self.quick else self.setup.n)  # = the demo's split by cell for 3d-sim
        if self.dataset == "bbbc007":
            if bbbc007 is None:
                raise RuntimeError("the bbbc007 data set needs --bbbc007 DIR (or POINTSEG_BBBC007)")
            src, n = bbbc007, self.setup.n  # the fixed split, also in quick mode
        else:
            src = base / "raw"
            kind = DEMO_KIND[self.dataset]
            size = self.setup.quick_size if self.quick else self.setup.size
            self.run("demo-data", src, "--kind", kind, "--n", str(sum(n)), "--size", size, "--seed", "2021",
                     name=f"{self.dataset}-demo-data")  # fmt: skip
        self.split = {"train": [], "val": [], "test": [], "classes": self.classes}
        if self.run.dry_run:
            return self.split
        images = sorted(p for p in src.glob("*.tif") if "." not in image_stem(p))
        if len(images) < sum(n):
            raise RuntimeError(f"{src} holds {len(images)} images; the split needs {sum(n)}")
        stems = [image_stem(p) for p in images]
        split = split_stems(self.dataset, stems, n)
        if (src / "classes.txt").exists() and (src / "classes.txt").read_text().split() != self.classes:
            raise RuntimeError(f"{src / 'classes.txt'} lists other classes than {self.classes}")
        for sub in ("images", "test", "inst", "masks", "gt"):  # no stale files from an earlier layout
            shutil.rmtree(base / sub, ignore_errors=True)
        for path, stem in zip(images, stems, strict=True):
            part = "test" if stem in split["test"] else ("images" if stem in split["train"] + split["val"] else None)
            if part is None:
                continue
            _link(path, base / part / path.name)
            inst = src / f"{stem}.masks.tif"  # demo-data's instance masks; BBBC007 ships <stem>.labels.tif
            if not inst.exists():
                inst = src / f"{stem}.labels.tif"
            sem_path = src / f"{stem}.classes.tif"
            labels = read_image(inst)
            sem = read_image(sem_path) if sem_path.exists() else (labels > 0).astype(np.uint8)
            axes = "ZYX" if sem.ndim == 3 else "YX"
            if part == "test" and len(self.classes) == 1:  # instance ids: evaluate --gt-binary --instances
                _link(inst, base / "gt" / f"{stem}.labels.tif")
            elif part == "test":
                out = base / "gt" / f"{stem}.labels.tif"
                out.parent.mkdir(parents=True, exist_ok=True)
                write_tiff(out, sem.astype(np.uint8), axes=axes, compression="zlib")
            else:
                # train/val masks keep the instance ids (full supervision of the centre head sees touching
                # objects apart); with several classes the class map sits beside them as <stem>.classes.tif
                _link(inst, base / "masks" / f"{stem}.labels.tif")
                if len(self.classes) > 1:
                    write_tiff(base / "masks" / f"{stem}.classes.tif", sem.astype(np.uint8), axes=axes,
                               compression="zlib")  # fmt: skip
            if part == "images":
                _link(inst, base / "inst" / f"{stem}.labels.tif")
        self.split = {**split, "classes": self.classes}
        (base / "split.json").write_text(json.dumps(self.split, indent=1))
        return self.split

    def simulate_points(self, *, jitter: float) -> Path:
        """One jittered click per instance of the train+val masks; per-click class from classes.tif."""
        out = self.base / "points.csv"
        self.run("annotate-import", "--from-masks", str(self.base / "inst" / "*.labels.tif"), "--images",
                 self.base / "images", "--jitter", str(jitter), "--seed", "0", "--out", out,
                 name=f"{self.dataset}-points")  # fmt: skip
        if self.dataset in CLASSES and not self.run.dry_run:
            _classes_from_masks(out, self.base / "raw", self.classes)
        return out

    # ------------------------------------------------------------------------------------ runs
    def _train(self, rdir: Path, *flags: str | Path, name: str) -> None:
        """``pointseg train`` into ``rdir``: the data set's flags, validation, ``extra``, then ``flags``."""
        val = ",".join(self.split["val"])
        own = self.setup.quick_args if self.quick else self.setup.train_args
        self.run("train", self.base / "points.csv", self.base / "images", "--out", rdir, *own,
                 *(["--val-images", val, "--val-masks", self.base / "masks"] if val else []),
                 "--classes", ",".join(self.classes), "--device", self.device, *self.extra, *flags,
                 name=name)  # fmt: skip

    def _drop_checkpoints(self, rdir: Path) -> None:
        """Checkpoints and objectness caches (~150 MB per FPN run), unless ``keep``."""
        if self.keep or self.run.dry_run:
            return
        for f in ("best.pt", "last.pt"):
            (rdir / f).unlink(missing_ok=True)
        shutil.rmtree(rdir / "cache", ignore_errors=True)

    def run_one(self, row: str, seed: int) -> dict:
        """Train, export, segment the test split, evaluate; return the evaluation summary.

        Unless ``keep``, the checkpoints and the objectness cache are deleted once the ONNX model is
        exported (``config.json``, ``metrics.csv``, ``curves.png``, ``model.onnx`` and predictions stay).
        """
        slug = "".join(ch if ch.isalnum() else "_" for ch in row.lower()).strip("_")
        rdir = self.base / "runs" / slug / f"seed{seed}"
        if rdir.exists():
            shutil.rmtree(rdir)
        row_args = ROW_ARGS[row] if row != "Full" else ["--masks", str(self.base / "masks")]
        if row == "Ours (parent cost)":
            row_args = [*row_args, "--w", f"{self.parent_w:g}"]
        tag = f"{self.dataset}-{slug}-{seed}"
        # the row's flags last, so that extra flags (e.g. a tuned --w) cannot undo them
        self._train(rdir, "--seed", str(seed), *row_args, name=f"{tag}-train")
        model = rdir / "model.onnx"
        self.run("export", rdir, "--out", model, name=f"{tag}-export")
        self._drop_checkpoints(rdir)
        self.run("segment", self.base / "test", "--model", model, "--out-dir", rdir / "pred", "--device",
                 self.device, name=f"{tag}-segment")  # fmt: skip
        report = rdir / "evaluate.json"
        single = len(self.classes) == 1  # gt/ then holds instance ids, so instance F1 is scored too
        self.run("evaluate", rdir / "pred", self.base / "gt", "--classes", ",".join(self.classes),
                 *(["--gt-binary", "--instances"] if single else []), "--json", report,
                 name=f"{tag}-evaluate")  # fmt: skip
        if self.run.dry_run:
            return {}
        return summarize_eval(json.loads(report.read_text()), self.classes)

    def tune(self, grid: list[list[str]]) -> tuple[list[str], list[dict]]:
        """Train ours (pCE+Img+Obj, seed 0) per grid point; pick the flags with the best validation mIoU.

        Only the validation images are scored (``metrics.csv``, best epoch); the test split is not touched.
        """
        trials = []
        for flags in grid:
            tag = "_".join(f.lstrip("-").replace(",", "-") for f in flags)
            rdir = self.base / "tune" / tag
            shutil.rmtree(rdir, ignore_errors=True)
            try:
                self._train(rdir, *ROW_ARGS["pCE+Img+Obj"], "--seed", "0", *flags, name=f"{self.dataset}-tune-{tag}")
                score = float("nan") if self.run.dry_run else best_val_miou(rdir / "metrics.csv")
                self._drop_checkpoints(rdir)
            except RuntimeError as exc:
                print(f"  !! {exc}", flush=True)
                score = float("nan")
            trials.append({"flags": flags, "val_miou": score})
        scored = [t for t in trials if np.isfinite(t["val_miou"])]
        best = max(scored, key=lambda t: t["val_miou"])["flags"] if scored else []
        return best, trials


def _classes_from_masks(points_csv: Path, raw: Path, classes: list[str]) -> None:
    from pointseg_cli.io.images import read_image
    from pointseg_cli.io.points import PointTable, read_points_csv, write_points_csv

    table = read_points_csv(points_csv)
    names = np.asarray(table.class_name, dtype=object).copy()
    for stem in table.stems:
        sel = np.flatnonzero(np.asarray(table.image) == stem)
        cls_img = read_image(raw / f"{stem}.classes.tif")
        ids = cls_img[tuple(table.subset(sel).pixel_coords(cls_img.ndim).T)]
        if np.any(ids == 0):
            raise RuntimeError(f"{stem}: {int((ids == 0).sum())} clicks fall on background in classes.tif")
        names[sel] = [classes[i - 1] for i in ids]
    write_points_csv(
        points_csv,
        PointTable(image=table.image, coords=table.coords, class_name=names.astype(str), class_names=tuple(classes)),
    )


def parse_grid(specs: list[str]) -> list[list[str]]:
    """``["w=5,10", "beta=1/0.5,1/0.25"]`` -> every combination as train flags (``/`` stands for ``,``)."""
    axes = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if not name or not values:
            raise ValueError(f"--tune expects NAME=V1,V2,...; got {spec!r}")
        axes.append([[f"--{name.strip()}", v.strip().replace("/", ",")] for v in values.split(",")])
    return [sum(combo, []) for combo in itertools.product(*axes)] if axes else []


def best_val_miou(metrics_csv: Path) -> float:
    """Best epoch's validation mIoU over the object classes (``val_miou``; older runs: ``val_miou_objects``)."""
    with metrics_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    key = "val_miou_objects" if rows and "val_miou_objects" in rows[0] else "val_miou"
    values = [float(r[key]) for r in rows if r.get(key)]
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
