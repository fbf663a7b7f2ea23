"""`pointseg train`: train a segmentation network from point annotations."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from pointseg_cli.cli._common import console, err_console, get_state, progress_enabled
from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.parsing import parse_floats, parse_ints


def _floats(text: str | None, what: str) -> tuple[float, ...] | None:
    return parse_floats(text, what=what, example="1,1,1")


def _ints(text: str | None, what: str) -> tuple[int, ...] | None:
    return parse_ints(text, what=what, example="128,128")


def _names(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(s.strip() for s in text.split(",") if s.strip())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _num(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def epoch_line(info: Any) -> str:
    """One line per epoch: loss terms, validation scores, lr, time, ETA."""
    row = info.row
    terms = " ".join(f"{k[6:]} {_num(v)}" for k, v in row.items() if k.startswith("train_") and k != "train_loss")
    text = f"epoch {info.epoch}/{info.epochs} step {info.step}/{info.total_steps}: loss {_num(row.get('train_loss'))}"
    text += f" ({terms})" if terms else ""
    if "val_loss" in row:
        text += f", val loss {_num(row['val_loss'])}"
    if not math.isnan(row.get("val_miou", math.nan)):
        text += f", val mIoU {_num(row['val_miou'])} (background IoU {_num(row.get('val_iou_background'))})"
    text += f", lr {row['lr']:.1e}, {_duration(row['seconds'])}"
    if info.improved:
        text += ", best so far"
    if info.eta_seconds is not None and info.step < info.total_steps:
        text += f", ETA {_duration(info.eta_seconds)}"
    return text


class _Monitor:
    """Rich progress bar with loss terms, lr and it/s; off a terminal, one plain line per epoch."""

    def __init__(self, enabled: bool, *, lines: bool = False) -> None:
        self.lines = lines and not enabled  # one plain line per epoch (and the ETA) instead of a bar
        self.eta_shown = False
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
            if self.lines and info.eta_seconds is not None and not self.eta_shown:
                self.eta_shown = True
                console.print(
                    f"ETA {_duration(info.eta_seconds)} for the remaining {info.total_steps - info.step} steps "
                    f"({info.steps_per_second:.2f} steps/s)", highlight=False, soft_wrap=True,
                )
            return
        terms = " ".join(f"{k} {v:.3f}" for k, v in info.terms.items())
        text = f"ep {info.epoch} loss {info.loss:.3f} ({terms}) lr {info.lr:.1e} {info.steps_per_second:.2f} it/s"
        if self.task is None:
            self.task = self.progress.add_task("training", total=info.total_steps, info=text)
        self.progress.update(self.task, completed=info.step, info=text)

    def epoch(self, info: Any) -> None:
        """Library epoch callback: the epoch's line when lines are on."""
        if self.lines:
            console.print(epoch_line(info), highlight=False, soft_wrap=True, markup=False)


def command(
    points: Path = typer.Argument(..., help="Canonical points CSV (image,z,y,x,class)."),
    images: list[str] = typer.Argument(..., help="Image files, folders or glob patterns (matched by stem)."),
    out: Path = typer.Option(
        None, "--out", "-o",
        help="Run directory to create (or continue with --resume) [a new runs/<date>-<time>-<arch>].",
    ),
    arch: str = typer.Option(None, "--arch", help="fpn (2D) or unet3d (3D); default from the images."),
    encoder: str = typer.Option(
        None, "--encoder", help="FPN encoder: resnet18, resnet34, resnet50 [resnet50; resnet18 on a CPU]."
    ),
    base_filters: int = typer.Option(
        None, "--base-filters", help="U-Net filters per level / ResNet width [64; on a CPU 32 in 2D, 16 in 3D]."
    ),
    filter_growth: int = typer.Option(None, "--filter-growth", help="U-Net: 1 keeps filters, 2 doubles [1]."),
    crop: str = typer.Option(
        None, "--crop", help="Crop size, e.g. 128,128 or 32,64,64 [128,128 in 2D, 32,64,64 in 3D]."
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", "-b", help="Crops per step [64 in 2D, 20 in 3D; on a CPU 8 in 2D, 2 in 3D]."
    ),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate [1e-3]."),
    epochs: int = typer.Option(None, "--epochs", help="Epochs [50]."),
    steps_per_epoch: int = typer.Option(None, "--steps-per-epoch", help="Steps per epoch [50]."),
    max_steps: int = typer.Option(None, "--max-steps", help="Stop after this many steps in total."),
    losses: str = typer.Option(
        None, "--losses",
        help="Loss terms: pce plus any of img, obj, center [pce,img,obj,center]. center trains the "
        "object-centre output used to split touching objects; leave it out for a class-map-only model.",
    ),
    lambdas: str = typer.Option(None, "--lambdas", help="Weights of L_point,L_obj,L_img [1,1,1]."),
    center_weight: float = typer.Option(None, "--center-weight", help="Weight of the center loss [1]."),
    center_target: str = typer.Option(
        None, "--center-target",
        help="Centre-map target: adaptive (a Gaussian shaped like each object's estimated extent) or "
        "fixed (one --center-sigma for all) [adaptive].",
    ),
    center_sigma: float = typer.Option(
        None, "--center-sigma", help="Sigma in pixels of the fixed centre target (fallback of adaptive) [2]."
    ),
    bg_weight: float = typer.Option(
        None, "--bg-weight",
        help="Weight of boundary background pixels [0.1 in 2D; 3D: 0, or 0.02 without obj and masks].",
    ),
    point_radius: int = typer.Option(None, "--point-radius", help="Label a ball of this radius per point [0]."),
    img_margin: int = typer.Option(
        None, "--img-margin",
        help="L_img: a class with a point this many pixels outside the crop (none inside) is left out "
        "of the 'absent' term instead of counted absent [0, the paper's rule].",
    ),
    img_scale: str = typer.Option(
        None, "--img-scale",
        help="L_img weight: crop (each crop's L_img weighs like the whole L_point) or point (like one "
        "clicked pixel, the balance of a summed point loss) [crop with one class, point with several].",
    ),
    beta: str = typer.Option(None, "--beta", help="L_obj class weights background,object [1,0.5]."),
    objectness: str = typer.Option(
        None,
        "--objectness",
        help="paper (region growing), gauss (Gaussian blobs) or a folder of <stem>.objectness.tif [paper].",
    ),
    w: float = typer.Option(None, "--w", help="Objectness decay in exp(-w*d) [2]."),
    cost: str = typer.Option(
        None, "--cost", help="Objectness step cost: seed (to the seed's mean) or parent (to the parent pixel) [seed]."
    ),
    gauss_sigma: float = typer.Option(None, "--gauss-sigma", help="Sigma in pixels for --objectness gauss [5]."),
    diffuse: int = typer.Option(
        None, "--diffuse", help="Perona-Malik diffusion iterations on the image the objectness is grown on [0 = off]."
    ),
    kappa: float = typer.Option(None, "--kappa", help="Diffusion edge threshold, normalised intensity [0.1]."),
    no_voxel_spacing: bool = typer.Option(
        False, "--no-voxel-spacing",
        help="Grow the objectness on the voxel grid, ignoring the voxel size recorded in the images.",
    ),
    equalize: bool = typer.Option(
        False, "--equalize",
        help="Histogram-equalise every image after the percentile scaling (network and objectness); "
        "saved with the model, so segment does the same.",
    ),
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

    Writes config.json, best.pt, last.pt, metrics.csv and curves.png into the run directory (a new
    folder under runs/ unless --out is given); the objectness of each image is cached there too.
    `pointseg export RUN_DIR` turns it into ONNX.

    Without a GPU, encoder, filters, batch size and crop that you do not set take CPU-sized
    values (see docs/training.md). The validation mIoU is the mean IoU over the object classes,
    as `pointseg evaluate` reports it; the background's IoU is shown on its own.
    """
    from pointseg_cli.devices import resolve_device
    from pointseg_cli.train.config import default_normalization
    from pointseg_cli.train.run import run_train

    if not points.is_file():
        raise InputError(f"points file {str(points)!r} does not exist")
    given: dict[str, Any] = {
        "arch": arch, "encoder": encoder, "base_filters": base_filters, "filter_growth": filter_growth,
        "crop": _ints(crop, "--crop"), "batch_size": batch_size, "lr": lr, "epochs": epochs,
        "steps_per_epoch": steps_per_epoch, "max_steps": max_steps, "losses": _names(losses),
        "lambdas": _floats(lambdas, "--lambdas"), "bg_weight": bg_weight, "point_radius": point_radius,
        "img_margin": img_margin, "img_scale": img_scale, "center_weight": center_weight,
        "center_target": center_target, "center_sigma": center_sigma,
        "w": w, "objectness_cost": cost, "gauss_sigma": gauss_sigma, "diffusion_iterations": diffuse,
        "diffusion_kappa": kappa, "val_fraction": val_fraction,
        "val_images": _names(val_images), "axes": axes, "seed": seed,
    }  # fmt: skip
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
    if no_voxel_spacing:
        given["voxel_spacing"] = False
    if equalize:
        given["normalization"] = {**default_normalization(), "equalize": True}
    if no_augment:
        given["augment"] = False
    if no_amp:
        given["amp"] = False
    torch_device = resolve_device(device or "auto")
    state = get_state()
    with _Monitor(progress_enabled(state), lines=not state.quiet and not sys.stdout.isatty()) as monitor:
        res = run_train(
            given, points, images, device=torch_device, out=out, resume=resume, classes=_names(classes),
            stain_target=stain_normalize, stain_method=stain_method, progress=monitor.stage, monitor=monitor,
            on_epoch=monitor.epoch,
        )
    if not state.quiet:
        _render(res)


def _render(res: Any) -> None:
    config, result = res.config, res.training
    last = result.history[-1] if result.history else {}
    summary = Table(title=f"pointseg train: {escape(str(res.run_dir))}", show_header=False)
    summary.add_row("run folder", escape(str(res.run_dir)) + (" (new)" if res.created_run_dir else ""))
    summary.add_row("network", f"{config.arch} ({config.encoder if config.arch == 'fpn' else 'U-Net'}), "
                    f"{config.ndim}-D, {config.channels} channel(s), classes {', '.join(config.classes)}")
    if res.cpu_defaults:
        summary.add_row("CPU defaults", ", ".join(f"{k} {v}" for k, v in res.cpu_defaults.items()))
    summary.add_row("steps / epochs", f"{result.steps} / {result.epochs} on {result.device}")
    summary.add_row("best", f"epoch {result.best_epoch}: {result.best_metric} {result.best_value:.4f}")
    if last:
        final = f"train loss {last.get('train_loss', math.nan):.4f}"
        if "val_loss" in last:
            final += f", val loss {last['val_loss']:.4f}"
        if not math.isnan(last.get("val_miou", math.nan)):
            final += f", val mIoU (objects) {last['val_miou']:.4f}, background IoU {last['val_iou_background']:.4f}"
        summary.add_row("last epoch", final)
    if config.normalization.get("equalize"):
        summary.add_row("equalise", "histogram-equalised after scaling (saved with the model)")
    if config.normalization.get("stain"):
        ref = config.normalization["stain"]
        summary.add_row("stain", escape(f"normalised to {ref.get('target', 'the reference')} ({ref['method']})"))
    summary.add_row("time", f"{result.seconds:.1f} s")
    summary.add_row("files", "config.json, best.pt, last.pt, metrics.csv, curves.png")
    console.print(summary)
