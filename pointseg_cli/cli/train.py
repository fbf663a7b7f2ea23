"""`pointseg train`: train a segmentation network from point annotations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pointseg_cli.cli._common import console, err_console, get_state, progress_enabled
from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.parsing import parse_floats, parse_ints

DIMENSION_ARCH = {2: "fpn", 3: "unet3d"}


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    return parse_floats(text, what=what, example="1,1,1")


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    return parse_ints(text, what=what, example="128,128")


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.split(",") if s.strip())


class _Monitor:
    """Rich progress bar with loss terms, lr and it/s (no-op when progress is disabled)."""

    def __init__(self, enabled: bool) -> None:
        self.progress: Progress | None = None
        self.task: Any = None
        self.stages: dict[str, Any] = {}
        if enabled:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err_console,
            )

    def __enter__(self) -> _Monitor:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def stage(self, task: str, done: int, total: int) -> None:
        """Library progress callback for the stages before training (image preparation)."""
        if self.progress is None or task == "training":
            return
        if task not in self.stages:
            self.stages[task] = self.progress.add_task(task, total=total or None, info="")
        self.progress.update(self.stages[task], completed=done, total=total or None)

    def __call__(self, info: Any) -> None:
        if self.progress is None:
            return
        terms = " ".join(f"{k} {v:.3f}" for k, v in info.terms.items())
        text = f"ep {info.epoch} loss {info.loss:.3f} ({terms}) lr {info.lr:.1e} {info.steps_per_second:.2f} it/s"
        if self.task is None:
            self.task = self.progress.add_task("training", total=info.total_steps, info=text)
        self.progress.update(self.task, completed=info.step, info=text)


def command(
    points: Path = typer.Argument(..., help="Canonical points CSV (image,z,y,x,class)."),
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (matched by stem)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory to create (or continue with --resume)."),
    arch: str = typer.Option(None, "--arch", help="fpn (2D) or unet3d (3D); default from the images."),
    encoder: str = typer.Option(None, "--encoder", help="FPN encoder: resnet18, resnet34, resnet50 [resnet50]."),
    base_filters: int = typer.Option(None, "--base-filters", help="U-Net filters per level / ResNet width [64]."),
    filter_growth: int = typer.Option(None, "--filter-growth", help="U-Net: 1 keeps filters, 2 doubles [1]."),
    crop: str = typer.Option(None, "--crop", help="Crop size, e.g. 128,128 or 32,64,64 [paper defaults]."),
    batch_size: int = typer.Option(None, "--batch-size", "-b", help="Crops per step [64 in 2D, 20 in 3D]."),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate [1e-3]."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs [50]."),
    steps_per_epoch: int = typer.Option(None, "--steps-per-epoch", help="Steps per epoch [50]."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps in total."),
    losses: str = typer.Option(None, "--losses", help="pce | pce,img | pce,obj | pce,img,obj [pce,img,obj]."),
    lambdas: str = typer.Option(None, "--lambdas", help="Weights of L_point,L_obj,L_img [1,1,1]."),
    bg_weight: float = typer.Option(
        None, "--bg-weight", help="Weight of boundary background pixels [0.1 in 2D, 0 in 3D]."
    ),
    point_radius: int = typer.Option(None, "--point-radius", help="Label a ball of this radius per point [0]."),
    img_margin: int = typer.Option(
        None, "--img-margin",
        help="L_img: a class with a point this many pixels outside the crop (none inside) is left out "
        "of the 'absent' term instead of counted absent [0, the paper's rule].",
    ),
    beta: str = typer.Option(None, "--beta", help="L_obj class weights background,object [1,0.5]."),
    objectness: str = typer.Option(
        None,
        "--objectness",
        help="paper (region growing), gauss (Gaussian blobs) or a folder of <stem>.objectness.tif [paper].",
    ),
    w: float = typer.Option(None, "--w", help="Objectness decay in exp(-w*d) [2]."),
    cost: str = typer.Option(
        None, "--cost", help="Objectness step cost: seed (difference to the seed) or parent (the issue's) [seed]."
    ),
    gauss_sigma: float = typer.Option(None, "--gauss-sigma", help="Sigma in pixels for --objectness gauss [5]."),
    masks: Path = typer.Option(None, "--masks", help="Folder of masks: full supervision with dense CE."),
    val_fraction: float = typer.Option(None, "--val-fraction", help="Share of images held out [0.2]."),
    val_images: str = typer.Option(None, "--val-images", help="Validation image stems, comma separated."),
    val_masks: Path = typer.Option(None, "--val-masks", help="Folder of masks for validation mIoU."),
    classes: str = typer.Option(None, "--classes", help="Class order, comma separated (default: sorted)."),
    axes: str = typer.Option(None, "--axes", help="Override the images' stored axes, e.g. CZYX."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda [auto]."),
    seed: int = typer.Option(None, "--seed", help="Random seed (same seed, same machine: same run on CPU) [0]."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Switch augmentation off."),
    no_amp: bool = typer.Option(False, "--no-amp", help="No mixed precision on CUDA."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from last.pt."),
    stain_normalize: Path = typer.Option(
        None, "--stain-normalize",
        help="RGB H&E target image: stain-normalise every image to its colours (2D RGB only); "
        "the reference is saved with the model, so segment applies it without the target.",
    ),
    stain_method: str = typer.Option(
        None, "--stain-method", help="Stain estimation with --stain-normalize: vahadane or macenko [vahadane]."
    ),
) -> None:
    """Train a segmentation network from point annotations (the paper's pCE + objectness + image losses).

    Writes config.json, best.pt, last.pt, metrics.csv and curves.png into the run directory; the
    objectness of each image is cached there too. `pointseg export RUN_DIR` turns it into ONNX.

    Example
    -------
    pointseg train points.csv images/ --out runs/nuclei --val-masks masks/ --epochs 30

    pointseg train points.csv volumes/ --out runs/3d --arch unet3d --crop 32,64,64 --batch-size 4

    pointseg train points.csv he_tiles/ --out runs/he --stain-normalize he_tiles/reference.tif
    """
    from pointseg_cli.io.points import read_points_csv
    from pointseg_cli.train.config import TrainConfig, default_normalization
    from pointseg_cli.train.loop import data_settings, train

    if not points.is_file():
        raise InputError(f"points file {str(points)!r} does not exist")
    given: dict[str, Any] = {
        "arch": arch, "encoder": encoder, "base_filters": base_filters, "filter_growth": filter_growth,
        "crop": _ints(crop, "--crop"), "batch_size": batch_size, "lr": lr, "epochs": epochs,
        "steps_per_epoch": steps_per_epoch, "max_steps": max_steps, "losses": _names(losses),
        "lambdas": _floats(lambdas, "--lambdas"), "bg_weight": bg_weight, "point_radius": point_radius,
        "img_margin": img_margin,
        "w": w, "objectness_cost": cost, "gauss_sigma": gauss_sigma, "val_fraction": val_fraction,
        "val_images": _names(val_images), "axes": axes, "device": device, "seed": seed,
    }  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    betas = _floats(beta, "--beta")
    if betas is not None:
        if len(betas) != 2:
            raise ConfigError(f"--beta must be two numbers background,object; got {beta!r}")
        given["beta_bg"], given["beta_obj"] = betas
    if objectness is not None:
        if objectness in ("paper", "gauss"):
            given["objectness"] = objectness
        elif Path(objectness).is_dir():
            given["objectness"], given["objectness_dir"] = "dir", str(objectness)
        else:
            raise InputError(f"--objectness must be paper, gauss or an existing folder; got {objectness!r}")
    for flag, path in (("--masks", masks), ("--val-masks", val_masks)):
        if path is not None and not path.is_dir():
            raise InputError(f"{flag} folder {str(path)!r} does not exist")
    if masks is not None:
        given["supervision"], given["masks_dir"] = "masks", str(masks)
    if val_masks is not None:
        given["val_masks_dir"] = str(val_masks)
    if no_augment:
        given["augment"] = False
    if no_amp:
        given["amp"] = False
    if stain_method is not None and stain_normalize is None:
        raise ConfigError(f"--stain-method {stain_method} needs --stain-normalize TARGET (an RGB H&E image)")
    stain = None
    if stain_normalize is not None:
        from pointseg_cli.preprocess.stain import reference_from_file

        stain = reference_from_file(stain_normalize, method=stain_method or "vahadane")
    class_order = _names(classes)
    if resume and (out / "config.json").is_file():
        saved = TrainConfig.from_json(out / "config.json")
        if stain is not None:
            given["normalization"] = {**saved.normalization, "stain": stain}
        config = saved.replace(**given)
    else:
        table = read_points_csv(points, classes=class_order)
        settings = data_settings(table, images, axes=axes)
        given.setdefault("arch", DIMENSION_ARCH[settings.ndim])
        if stain is not None:
            given["normalization"] = {**default_normalization(), "stain": stain}
        config = TrainConfig(ndim=settings.ndim, channels=settings.channels, classes=settings.classes, **given)
    table = read_points_csv(points, classes=config.classes)
    state = get_state()
    with _Monitor(progress_enabled(state)) as monitor:
        result = train(config, table, images, out, resume=resume, monitor=monitor, progress=monitor.stage)
    if state.quiet:
        return
    last = result.history[-1] if result.history else {}
    summary = Table(title=f"pointseg train: {result.run_dir}", show_header=False)
    summary.add_row("network", f"{config.arch} ({config.encoder if config.arch == 'fpn' else 'U-Net'}), "
                    f"{config.ndim}-D, {config.channels} channel(s), classes {', '.join(config.classes)}")
    summary.add_row("steps / epochs", f"{result.steps} / {result.epochs} on {result.device}")
    summary.add_row("best", f"epoch {result.best_epoch}: {result.best_metric} {result.best_value:.4f}")
    if last:
        final = f"train loss {last.get('train_loss', math.nan):.4f}"
        if "val_loss" in last:
            final += f", val loss {last['val_loss']:.4f}"
        if not math.isnan(last.get("val_miou", math.nan)):
            final += f", val mIoU {last['val_miou']:.4f}"
        summary.add_row("last epoch", final)
    if config.normalization.get("stain"):
        ref = config.normalization["stain"]
        summary.add_row("stain", escape(f"normalised to {ref.get('target', 'the reference')} ({ref['method']})"))
    summary.add_row("time", f"{result.seconds:.1f} s")
    summary.add_row("files", "config.json, best.pt, last.pt, metrics.csv, curves.png")
    console.print(summary)
