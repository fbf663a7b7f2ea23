"""The training loop: Adam, ReduceLROnPlateau on validation loss, AMP on CUDA, checkpoints, reports."""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from pointseg_cli.errors import ConfigError, DeviceError, InputError
from pointseg_cli.io.points import PointTable, read_points_csv
from pointseg_cli.model.checkpoint import read_checkpoint
from pointseg_cli.progress import ProgressCallback, noop_progress
from pointseg_cli.train.checkpoint import save_checkpoint
from pointseg_cli.train.config import TrainConfig
from pointseg_cli.train.data import prepare_data
from pointseg_cli.train.losses import PointSupervisionLoss
from pointseg_cli.train.report import plot_curves, write_metrics_csv
from pointseg_cli.train.sampler import CropSampler, Prefetcher
from pointseg_cli.train.validate import to_device, validate

log = logging.getLogger(__name__)

#: Settings that may differ when resuming (everything else must match the saved config).
RESUMABLE_CHANGES = ("epochs", "max_steps", "device", "amp", "prefetch")
#: The ETA is first estimated after this many steps (the very first step includes warm-up).
ETA_AFTER_STEPS = 3
#: A warning is logged when the estimated training time exceeds this many seconds.
LONG_RUN_SECONDS = 3600.0


@dataclass(frozen=True)
class StepInfo:
    """Passed to the ``monitor`` callback after every optimisation step."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    terms: dict[str, float]
    lr: float
    steps_per_second: float
    #: Seconds the remaining steps should take at the speed so far; ``None`` for the first
    #: :data:`ETA_AFTER_STEPS` steps (the first ones include one-off warm-up costs).
    eta_seconds: float | None = None


@dataclass(frozen=True)
class EpochInfo:
    """Passed to the ``on_epoch`` callback after each epoch's validation and checkpoint.

    ``row`` is the epoch's ``metrics.csv`` row: ``train_<term>`` and ``val_<term>`` losses,
    ``val_miou`` (mean IoU over the object classes, as ``pointseg evaluate`` computes it) and
    ``val_iou_background`` (NaN without validation masks).
    """

    epoch: int
    epochs: int
    step: int
    total_steps: int
    row: dict[str, Any]
    improved: bool
    eta_seconds: float | None


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`."""

    run_dir: Path
    best_path: Path
    last_path: Path
    steps: int
    epochs: int
    best_epoch: int
    best_metric: str
    best_value: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"


def _check_resume(saved: TrainConfig, config: TrainConfig) -> None:
    a, b = saved.to_dict(), config.to_dict()
    diff = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if diff:
        raise ConfigError(
            "--resume needs the saved run's settings; these differ: "
            + ", ".join(f"{k} (saved {a[k]!r}, given {b[k]!r})" for k in diff[:4])
        )


def _batch_workers(device: str) -> int:
    """Threads making batches: one on the CPU (whose cores train the network), up to 4 beside a GPU.

    At the GPU defaults one batch costs about 85 ms (2D, 64 × 128²) to 100 ms (3D, 20 × 32×64²) of
    one core, more than a GPU's training step; a few workers keep the GPU fed.
    """
    if not device.startswith("cuda"):
        return 1
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class _Clock:
    """Step timing for the speed shown per step and the ETA (validation time not counted)."""

    def __init__(self, start: int, total: int) -> None:
        self.start, self.total = start, total
        self.last = self.first = time.perf_counter()
        self.warned = False
        self.rate = math.nan  # mean steps/s since the first step

    def tick(self, step: int) -> tuple[float, float | None]:
        """Steps/s of the step just done and the ETA once :data:`ETA_AFTER_STEPS` are done."""
        now = time.perf_counter()
        speed = 1.0 / max(now - self.last, 1e-9)
        self.last = now
        done = step - self.start
        if done == 1:
            self.first = now  # the first step pays for warm-up; time from its end on
        if done < ETA_AFTER_STEPS:
            return speed, None
        per_step = (now - self.first) / (done - 1)
        self.rate = 1.0 / max(per_step, 1e-9)
        return speed, per_step * (self.total - step)

    def pause(self, seconds: float) -> None:
        """Leave ``seconds`` (validation, checkpoints) out of the step timing."""
        self.first += seconds
        self.last += seconds


def train(
    config: TrainConfig,
    points: PointTable | str | Path,
    images: Sequence[str | Path],
    run_dir: str | Path,
    *,
    device: str | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    monitor: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
) -> TrainResult:
    """Train a network from points and write a run directory.

    Parameters
    ----------
    config : TrainConfig
    points : PointTable or path to a canonical points CSV
    images : image files, folders or globs (matched to points by stem)
    run_dir : output folder: ``config.json``, ``best.pt``, ``last.pt``, ``metrics.csv``,
        ``curves.png`` and ``cache/`` (objectness arrays)
    device : a concrete torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``); ``None`` takes
        ``config.device``, which must then not be ``"auto"`` (resolve it with
        :func:`pointseg_cli.devices.resolve_device`)
    resume : continue from ``run_dir/last.pt`` (the saved config must match, except
        :data:`RESUMABLE_CHANGES`)
    progress : ``progress(task, done, total)`` callback
    monitor : called with a :class:`StepInfo` after each step (loss terms, lr, speed, ETA)
    on_epoch : called with an :class:`EpochInfo` after each epoch (its metrics row)

    Returns
    -------
    TrainResult

    Notes
    -----
    Once the ETA is known, a warning is logged when the run would take longer than
    :data:`LONG_RUN_SECONDS`.
    """
    t0 = time.perf_counter()
    progress = progress or noop_progress
    if device is None:
        if config.device == "auto":
            raise ConfigError("train() needs a concrete device ('cpu' or 'cuda'); config.device is 'auto'")
        device = config.device
    if not isinstance(points, PointTable):
        points = read_points_csv(points, classes=config.classes)
    run_dir = Path(run_dir)
    ckpt: dict[str, Any] | None = None
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise InputError(f"--resume: {run_dir} holds no last.pt to resume from")
        ckpt = read_checkpoint(run_dir / "last.pt")
        _check_resume(TrainConfig.from_dict(ckpt["config"]), config)
    elif (run_dir / "last.pt").exists():
        raise InputError(f"{run_dir} already holds a training run (last.pt); use --resume or another --out")
    use_amp = bool(config.amp and device.startswith("cuda"))
    data = prepare_data(config, points, images, cache_dir=run_dir / "cache", progress=progress)
    config.to_json(run_dir / "config.json")

    from pointseg_cli.model import build_model
    from pointseg_cli.nets import forward_heads

    torch.manual_seed(config.seed)
    model = build_model(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_factor, patience=config.lr_patience
    )
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history: list[dict[str, Any]] = []
    start, best_value, best_epoch = 0, math.inf, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start, history = int(ckpt["step"]), list(ckpt["history"])
        best_value, best_epoch = float(ckpt["best_value"]), int(ckpt["best_epoch"])
    loss_fn = PointSupervisionLoss(config)
    loss_fn.beta = loss_fn.beta.to(device)
    train_sampler = CropSampler(data.train, config, augment=config.augment, stream=0)
    val_sampler = CropSampler(data.val, config, augment=False, stream=1) if data.val else None
    n_val_batches = 0
    if val_sampler is not None:
        n_val_batches = max(1, min(4, math.ceil(val_sampler.n_points / int(config.batch_size or 1))))
    has_masks = any(im.val_mask is not None for im in data.val)
    best_metric = "val_miou" if has_masks else ("val_loss" if data.val else "train_loss")
    spe = config.steps_per_epoch
    total = config.epochs * spe if config.max_steps is None else min(config.max_steps, config.epochs * spe)
    n_epochs = math.ceil(total / spe)
    sums: dict[str, float] = {}
    count, t_epoch = 0, time.perf_counter()
    clock = _Clock(start, total)
    eta: float | None = None
    model.train()
    workers = _batch_workers(device)
    with Prefetcher(train_sampler.batch, range(start, total), depth=config.prefetch, workers=workers) as batches:
        for step, batch in batches:
            batch = to_device(batch, device)
            try:
                with torch.autocast("cuda", enabled=use_amp):
                    heads = forward_heads(model, batch["image"])
                out = loss_fn(heads["logits"], batch, heads.get("centers"))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(out.total).backward()
                scaler.step(optimizer)
                scaler.update()
            except torch.cuda.OutOfMemoryError:
                raise DeviceError(
                    f"the GPU ran out of memory with batch size {config.batch_size} and crop {config.crop}; "
                    "use a smaller --batch-size or --crop"
                ) from None
            loss = float(out.total.detach())
            if not math.isfinite(loss):
                raise ConfigError(f"the loss became {loss} at step {step + 1}; try a lower --lr")
            count += 1
            sums["loss"] = sums.get("loss", 0.0) + loss
            for k, v in out.terms.items():
                sums[k] = sums.get(k, 0.0) + v
            speed, eta = clock.tick(step + 1)
            if eta is not None and not clock.warned:
                clock.warned = True
                if eta > LONG_RUN_SECONDS:
                    log.warning(
                        "this run would take about %.1f h (%d steps at %.2f steps/s on %s); fewer --epochs or "
                        "--steps-per-epoch, a smaller --batch-size or --crop, or a GPU make it shorter",
                        eta / 3600, total - step - 1, clock.rate, device,
                    )
            lr = float(optimizer.param_groups[0]["lr"])
            epoch = step // spe + 1
            if monitor is not None:
                monitor(StepInfo(step + 1, total, epoch, loss, dict(out.terms), lr, speed, eta))
            progress("training", step + 1, total)
            if (step + 1) % spe and step + 1 != total:
                continue
            t_val = time.perf_counter()
            val = validate(
                model, sampler=val_sampler, n_batches=n_val_batches, images=data.val, loss_fn=loss_fn,
                n_classes=len(config.classes) + 1, divisor=config.divisor, device=device,
            )
            row: dict[str, Any] = {"epoch": epoch, "step": step + 1, "lr": lr, "seconds": t_val - t_epoch}
            row.update({f"train_{k}": v / count for k, v in sums.items()})
            if val_sampler is not None:
                row["val_loss"] = val.loss
                row.update({f"val_{k}": v for k, v in val.terms.items()})
            row["val_miou"], row["val_iou_background"] = val.miou, val.iou_background
            history.append(row)
            scheduler.step(row["val_loss"] if val_sampler is not None else row["train_loss"])
            value = -row["val_miou"] if has_masks else row.get("val_loss", row["train_loss"])
            state = {"history": history, "step": step + 1, "epoch": epoch}
            improved = math.isfinite(value) and value < best_value
            if improved:
                best_value, best_epoch = value, epoch
                save_checkpoint(run_dir / "best.pt", model=model, config=config, best_epoch=epoch, **state)
            save_checkpoint(
                run_dir / "last.pt", model=model, config=config, optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), best_value=best_value, best_epoch=best_epoch, **state,
            )
            write_metrics_csv(run_dir / "metrics.csv", history)
            plot_curves(run_dir / "curves.png", history)
            log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items() if isinstance(v, float)})
            clock.pause(time.perf_counter() - t_val)
            if on_epoch is not None:
                on_epoch(EpochInfo(epoch, n_epochs, step + 1, total, dict(row), improved, eta))
            sums, count, t_epoch = {}, 0, time.perf_counter()
    if not (run_dir / "best.pt").is_file():
        raise InputError(f"training in {run_dir} finished without a finite {best_metric}; nothing to save as best")
    return TrainResult(
        run_dir=run_dir,
        best_path=run_dir / "best.pt",
        last_path=run_dir / "last.pt",
        steps=total,
        epochs=len(history),
        best_epoch=best_epoch,
        best_metric=best_metric,
        best_value=-best_value if has_masks else best_value,
        history=history,
        seconds=time.perf_counter() - t0,
        device=device,
    )
