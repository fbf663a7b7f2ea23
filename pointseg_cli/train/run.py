"""``run_train``: the library behind ``pointseg train``.

It turns the settings a user gave into a complete :class:`TrainConfig` — completed from the data
(dimensionality, channels, classes, architecture) and the device (:data:`CPU_DEFAULTS` on a CPU),
or, with ``resume``, taken from the run being continued with the given changes — picks the run
folder (a new one under ``runs/`` when none is given) and runs :func:`~pointseg_cli.train.loop.train`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointseg_cli.errors import ConfigError, InputError, PointsError
from pointseg_cli.io.images import find_images, image_stem, read_info
from pointseg_cli.io.points import PointTable, read_points_csv
from pointseg_cli.progress import ProgressCallback
from pointseg_cli.train.config import (
    CPU_DEFAULTS,
    DIMENSION_ARCH,
    TrainConfig,
    check_background_label,
    default_normalization,
)
from pointseg_cli.train.loop import EpochInfo, StepInfo, TrainResult, train

log = logging.getLogger(__name__)

#: Where runs go when no run folder is given (relative to the working directory).
RUNS_ROOT = Path("runs")


@dataclass(frozen=True)
class DataSettings:
    """What the images and points dictate: spatial dims, channels, object classes."""

    ndim: int
    channels: int
    classes: tuple[str, ...]


@dataclass(frozen=True)
class TrainRunResult:
    """Outcome of :func:`run_train`.

    Attributes
    ----------
    config : TrainConfig
        The configuration the run used (as saved in ``config.json``).
    training : TrainResult
        Steps, epochs, best epoch and score, history, time.
    run_dir : Path
        The run folder.
    created_run_dir : bool
        Whether the folder was made by this call under ``runs_root`` (no run folder given).
    cpu_defaults : dict
        The :data:`CPU_DEFAULTS` settings that were applied (empty on a GPU, when resuming, or
        when the user set them all).
    """

    config: TrainConfig
    training: TrainResult
    run_dir: Path
    created_run_dir: bool = False
    cpu_defaults: dict[str, Any] = field(default_factory=dict)


def data_settings(points: PointTable, images: Sequence[str | Path], *, axes: str | None = None) -> DataSettings:
    """Dimensionality, channels and classes of the images that carry points (for building the config)."""
    if len(points) == 0:
        raise PointsError("the points file holds no points; expected at least one point per training image")
    infos = {image_stem(p): p for p in find_images(list(images))}
    used = [s for s in points.stems if s in infos]
    if not used:
        raise InputError(
            f"no image matches the points' image names (points name {points.stems[:3]}, "
            f"images are {sorted(infos)[:3]})"
        )
    info = read_info(infos[used[0]], axes=axes)
    return DataSettings(info.ndim, info.channels, tuple(points.class_names))


def new_run_dir(root: str | Path, arch: str, *, now: time.struct_time | None = None) -> Path:
    """Create and return a new, empty folder ``root/<YYYYmmdd-HHMMSS>-<arch>`` (``-2``, ``-3``... if taken)."""
    root = Path(root)
    stamp = time.strftime("%Y%m%d-%H%M%S", now or time.localtime())
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = root / (f"{stamp}-{arch}" if n == 1 else f"{stamp}-{arch}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise InputError(f"cannot create a new run folder in {root}: {stamp}-{arch} and 998 variants exist")


def resolve_config(
    settings: Mapping[str, Any],
    points: PointTable,
    images: Sequence[str | Path],
    *,
    device: str,
    saved: TrainConfig | None = None,
    stain: dict[str, Any] | None = None,
) -> tuple[TrainConfig, dict[str, Any]]:
    """The complete configuration of a run, and the CPU defaults it took.

    Parameters
    ----------
    settings : mapping
        :class:`TrainConfig` fields the user set; every other field takes its default.
    points, images : the training data (read for ``ndim``, ``channels`` and ``classes``).
    device : the concrete torch device the run uses; recorded in the config. On ``"cpu"``, each
        :data:`CPU_DEFAULTS` setting absent from ``settings`` is applied.
    saved : the configuration of a run being resumed: the result is it with ``settings`` applied
        (no data-derived or CPU defaults).
    stain : a stain reference (:func:`reference_from_file` of the stain target) to
        normalise every image to.
    """
    given = {k: v for k, v in settings.items() if v is not None}
    if saved is not None:
        if stain is not None:
            given["normalization"] = {**saved.normalization, "stain": stain}
        return saved.replace(**given, device=device), {}
    data = data_settings(points, images, axes=given.get("axes"))
    given.setdefault("arch", DIMENSION_ARCH.get(data.ndim, "fpn"))
    if stain is not None:
        given["normalization"] = {**given.get("normalization", default_normalization()), "stain": stain}
    applied: dict[str, Any] = {}
    if device == "cpu":
        applied = {k: v for k, v in CPU_DEFAULTS.get(data.ndim, {}).items() if k not in given}
        if given["arch"] != "fpn":
            applied.pop("encoder", None)
    given.update(applied)
    config = TrainConfig(
        ndim=data.ndim, channels=data.channels, classes=data.classes, **{**given, "device": device}
    )
    check_background_label(config)
    return config, applied


def run_train(
    settings: Mapping[str, Any] | TrainConfig,
    points: str | Path | PointTable,
    images: Sequence[str | Path],
    *,
    device: str,
    out: str | Path | None = None,
    runs_root: str | Path = RUNS_ROOT,
    resume: bool = False,
    classes: Sequence[str] | None = None,
    stain_target: str | Path | None = None,
    stain_method: str | None = None,
    progress: ProgressCallback | None = None,
    monitor: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochInfo], None] | None = None,
) -> TrainRunResult:
    """Train a network from points into a run folder.

    Parameters
    ----------
    settings : mapping or TrainConfig
        The :class:`TrainConfig` fields the user set (``None`` values count as not set), completed
        by :func:`resolve_config`; a complete ``TrainConfig`` is used as it is.
    points : canonical points CSV or a PointTable
    images : image files, folders or globs (matched to points by stem)
    device : concrete torch device (resolve ``"auto"`` with :func:`pointseg_cli.devices.resolve_device`)
    out : run folder; ``None`` creates a new one under ``runs_root`` (see :func:`new_run_dir`)
    resume : continue the run in ``out`` from its ``last.pt`` with its saved settings
        (``settings`` may change those in :data:`~pointseg_cli.train.loop.RESUMABLE_CHANGES`)
    classes : class order when ``points`` is a path (default: sorted names)
    stain_target : an RGB H&E image: every image is stain-normalised to its colours (2-D RGB
        only); the reference is saved in the config, so ``segment`` applies it without the image
    stain_method : ``"vahadane"`` (default) or ``"macenko"``; only with ``stain_target``
    progress, monitor, on_epoch : callbacks, see :func:`~pointseg_cli.train.loop.train`

    Returns
    -------
    TrainRunResult

    Raises
    ------
    ConfigError
        ``resume`` without ``out``, ``stain_method`` without ``stain_target``, invalid settings.
    """
    if resume and out is None:
        raise ConfigError("--resume continues an existing run: give its folder with --out RUN_DIR")
    if stain_method is not None and stain_target is None:
        raise ConfigError(f"--stain-method {stain_method} needs --stain-normalize TARGET (an RGB H&E image)")
    stain = None
    if stain_target is not None:
        from pointseg_cli.preprocess.stain import reference_from_file

        stain = reference_from_file(stain_target, method=stain_method or "vahadane")
    saved = None
    if resume and out is not None and (Path(out) / "config.json").is_file():
        saved = TrainConfig.from_json(Path(out) / "config.json")
    if not isinstance(points, PointTable):
        order = saved.classes if saved is not None else (tuple(classes) if classes else None)
        points = read_points_csv(points, classes=order)
    if isinstance(settings, TrainConfig):
        config, applied = settings, {}
        if saved is None:
            check_background_label(config)
    else:
        config, applied = resolve_config(settings, points, images, device=device, saved=saved, stain=stain)
    if applied:
        log.info("CPU-sized defaults: %s", ", ".join(f"{k}={v}" for k, v in applied.items()))
    created = out is None
    run_dir = new_run_dir(runs_root, config.arch) if out is None else Path(out)
    finished = False
    try:
        result = train(
            config, points, images, run_dir, device=device, resume=resume, progress=progress, monitor=monitor,
            on_epoch=on_epoch,
        )
        finished = True
    finally:
        if created and not finished and not (run_dir / "last.pt").exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a folder this call made and left without a run
    return TrainRunResult(config=config, training=result, run_dir=run_dir, created_run_dir=created,
                          cpu_defaults=applied)
