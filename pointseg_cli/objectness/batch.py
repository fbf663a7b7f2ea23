"""Objectness over a folder of images: read, (tune,) grow, write outputs and the JSON sidecar.

Outputs per image (see docs/file formats): ``<stem>.objectness.tif`` float32 ``(K+1, *spatial)``,
``<stem>.regions.tif`` int32, ``<stem>.background.tif`` uint8, optional ``<stem>.preview.png``;
plus ``objectness.json`` in the output folder recording the configuration, class order and tuning.

Options that do not fit an image (``--spacing`` with the wrong number of values, ``--axes`` with
the wrong number of letters) and output names taken by folders stop the run before any image is
processed. While an image is processed its outputs are locked (:mod:`pointseg_cli.io.locks`): an
image that another run is processing into the same folder is skipped (``locked by another run``).
Temporary files and locks that killed runs left in the output folder are removed at the start.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli import __version__
from pointseg_cli.errors import ConfigError, ImageFormatError, InputError, PointsegError
from pointseg_cli.io.images import (
    atomic_output,
    find_images,
    image_stem,
    read_image,
    read_info,
    write_png,
    write_tiff,
)
from pointseg_cli.io.locks import try_lock
from pointseg_cli.io.masks import find_masks, read_labels
from pointseg_cli.io.points import PointTable, read_points_csv
from pointseg_cli.io.writers import check_output_dir, check_output_path, prepare_output_dir
from pointseg_cli.objectness.pipeline import ObjectnessConfig, grow_prepared, prepare_image
from pointseg_cli.objectness.preview import render_preview
from pointseg_cli.objectness.tune import TuneResult, TuneSample, tune
from pointseg_cli.progress import ProgressCallback, noop_progress

log = logging.getLogger(__name__)

SIDECAR = "objectness.json"


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one image."""

    stem: str
    path: Path
    seeds: int
    shape: tuple[int, ...]
    outputs: tuple[Path, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    note: str = ""  # why an image was skipped (e.g. "locked by another run")


@dataclass(frozen=True)
class ObjectnessRun:
    """Summary of :func:`run_objectness`."""

    outcomes: tuple[ImageOutcome, ...]
    config: ObjectnessConfig
    classes: tuple[str, ...]
    skipped: tuple[str, ...]  # image stems without points
    missing: tuple[str, ...]  # point stems without an image
    sidecar: Path
    tuned: TuneResult | None = None

    @property
    def failed(self) -> int:
        return sum(o.error is not None for o in self.outcomes)


def _channel_axis(image: np.ndarray, ndim: int) -> int | None:
    return -1 if image.ndim == ndim + 1 else None


def _load(path: Path, axes: str | None) -> tuple[np.ndarray, int, int | None, tuple[float, ...] | None]:
    """Pixels, spatial dimensionality, channel axis and recorded voxel size of one image."""
    image = read_image(path, axes=axes)
    info = read_info(path, axes=axes)
    return image, info.ndim, _channel_axis(image, info.ndim), info.voxel_size


def _voxel_size(path: Path, axes: str | None, override: Sequence[float] | None) -> tuple[float, ...] | None:
    """The image's voxel size (µm), or ``override`` (see :func:`~pointseg_cli.io.voxel.resolve_voxel_size`)."""
    from pointseg_cli.io.voxel import resolve_voxel_size

    info = read_info(path, axes=axes)
    return resolve_voxel_size(info.voxel_size, override, ndim=info.ndim, name=path.name)


def _points(points: PointTable | str | Path, classes: Sequence[str] | None) -> PointTable:
    if isinstance(points, PointTable):
        return points
    if not Path(points).is_file():
        raise InputError(f"points file {str(points)!r} does not exist")
    return read_points_csv(points, classes=classes)


def _tune_samples(
    pairs: Sequence[tuple[Path, str]], points: PointTable, masks_dir: Path, axes: str | None, target: Any
) -> list[TuneSample]:
    masks = find_masks(masks_dir, [path for path, _ in pairs])
    if not masks:
        raise InputError(
            f"--tune: no mask in {str(masks_dir)!r} matches an image with points "
            f"(expected e.g. {pairs[0][1]}.labels.tif)"
        )
    samples = []
    for path, stem in pairs:
        if stem not in masks:
            log.info("tune: no mask for %s, not used for tuning", stem)
            continue
        image, _, ch, voxel = _load(path, axes)
        mask = read_labels(masks[stem])
        samples.append(
            TuneSample(name=stem, image=image, points=points.for_image(stem), mask=mask, channel_axis=ch,
                       stain_target=target, voxel_size=voxel)
        )
    return samples


OUTPUT_KINDS = ("objectness", "regions", "background")


def _output_paths(out_dir: Path, stem: str, *, preview: bool) -> list[Path]:
    names = [f"{stem}.{kind}.tif" for kind in OUTPUT_KINDS] + ([f"{stem}.preview.png"] if preview else [])
    return [out_dir / n for n in names]


def _check_before_work(
    pairs: Sequence[tuple[Path, str]], out_dir: Path, *, config: ObjectnessConfig, axes: str | None, preview: bool
) -> None:
    """Usage errors found from the images' headers and the output folder, before any image is processed."""
    check_output_dir(out_dir, what="--out")
    check_output_path(out_dir / SIDECAR)
    for path, stem in pairs:
        try:
            info = read_info(path, axes=axes)
        except PointsegError as exc:
            if axes is not None and isinstance(exc, ImageFormatError):
                try:
                    read_info(path)
                except PointsegError:
                    continue  # the image itself is bad: reported when it is processed
                raise ConfigError(str(exc)) from None
            continue
        if config.spacing is not None and len(config.spacing) != info.ndim:
            raise ConfigError(
                f"--spacing has {len(config.spacing)} values but '{path.name}' has {info.ndim} spatial axes "
                f"({info.spatial_axes}); give one value per spatial axis"
            )
        for target in _output_paths(out_dir, stem, preview=preview):
            check_output_path(target)


def _process(
    path: Path, stem: str, points: PointTable, out_dir: Path, *, config: ObjectnessConfig, axes: str | None,
    preview: bool, target: np.ndarray | None, voxel_size: Sequence[float] | None = None, use_voxel_size: bool = False,
) -> ImageOutcome:
    t0 = time.perf_counter()
    vsize = _voxel_size(path, axes, voxel_size)
    if use_voxel_size and config.spacing is None and vsize is not None:
        config = replace(config, spacing=vsize)
    image, ndim, ch, _ = _load(path, axes)
    pts = points.for_image(stem)
    x = prepare_image(image, config, channel_axis=ch, stain_target=target)
    del image
    res = grow_prepared(x, pts, config=config, channel_axis=ch)
    spatial_axes = "ZYX"[3 - ndim:]
    meta = {"classes": ["background", *points.class_names], "w": config.w, "mode": config.mode,
            "cost": config.cost, "spacing": list(config.spacing) if config.spacing else None, "pointseg": __version__}
    paths = _output_paths(out_dir, stem, preview=preview)
    outputs = [
        write_tiff(paths[0], res.soft_labels(len(points.class_names)), axes="C" + spatial_axes, metadata=meta,
                   compression="zlib", voxel_size=vsize),
        write_tiff(paths[1], res.regions, axes=spatial_axes, compression="zlib", voxel_size=vsize),
        write_tiff(paths[2], res.background.astype(np.uint8), axes=spatial_axes, compression="zlib",
                   voxel_size=vsize),
    ]
    if preview:
        seeds = pts.pixel_coords(ndim)
        outputs.append(write_png(paths[3], render_preview(x, res, seeds, channel_axis=ch)))
    return ImageOutcome(stem=stem, path=path, seeds=len(pts), shape=res.regions.shape, outputs=tuple(outputs),
                        seconds=time.perf_counter() - t0)


def _process_locked(
    path: Path, stem: str, points: PointTable, out_dir: Path, *, config: ObjectnessConfig, axes: str | None,
    preview: bool, target: np.ndarray | None, voxel_size: Sequence[float] | None = None, use_voxel_size: bool = False,
) -> ImageOutcome:
    """:func:`_process` under the image's output lock; a failure of this image becomes its outcome."""
    seeds = len(points.for_image(stem))
    try:
        lock = try_lock(out_dir, stem, task="objectness")
    except OSError as exc:
        return ImageOutcome(stem=stem, path=path, seeds=seeds, shape=(),
                            error=f"{stem}: cannot lock its outputs: {exc.strerror or exc}")
    if lock is None:
        return ImageOutcome(stem=stem, path=path, seeds=seeds, shape=(), note="locked by another run")
    with lock:
        try:
            return _process(path, stem, points, out_dir, config=config, axes=axes, preview=preview, target=target,
                            voxel_size=voxel_size, use_voxel_size=use_voxel_size)
        except PointsegError as exc:
            message = str(exc)
            log.debug("image %s failed", stem, exc_info=True)
        except MemoryError:
            message = "out of host memory"
        except OSError as exc:  # e.g. the disk filled up while writing
            message = f"cannot read or write{f' ({exc.filename})' if exc.filename else ''}: {exc.strerror or exc}"
            log.debug("image %s failed", stem, exc_info=True)
    return ImageOutcome(stem=stem, path=path, seeds=seeds, shape=(), error=f"{stem}: {message}")


def _process_all(
    pairs: Sequence[tuple[Path, str]], points: PointTable, out_dir: Path, *, workers: int,
    progress: ProgressCallback, **kw: Any,
) -> list[ImageOutcome]:
    """Outcomes in the order of ``pairs``; with ``workers > 1`` images run in that many processes."""
    if workers <= 1 or len(pairs) <= 1:
        outcomes = []
        for i, (path, stem) in enumerate(pairs):
            outcomes.append(_process_locked(path, stem, points, out_dir, **kw))
            progress("images", i + 1, len(pairs))
        return outcomes
    # spawn: a forked child could inherit locks held by threads of the parent (BLAS, torch)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(pairs)), mp_context=ctx) as pool:
        futures = [pool.submit(_process_locked, path, stem, points.for_image(stem), out_dir, **kw)
                   for path, stem in pairs]
        for i, fut in enumerate(as_completed(futures)):
            fut.result()
            progress("images", i + 1, len(pairs))
    return [fut.result() for fut in futures]


def run_objectness(
    points: PointTable | str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    config: ObjectnessConfig,
    classes: Sequence[str] | None = None,
    axes: str | None = None,
    preview: bool = False,
    stain_target: str | Path | None = None,
    tune_masks: str | Path | None = None,
    diffusion_grid: Sequence[int] = (0, 5, 10, 20, 40),
    workers: int = 1,
    progress: ProgressCallback | None = None,
    voxel_size: Sequence[float] | None = None,
    use_voxel_size: bool | None = None,
) -> ObjectnessRun:
    """Compute and write objectness for every image that has points.

    Parameters
    ----------
    points : PointTable, str or Path
        Canonical points of all images (class order = ``points.class_names``), or the points CSV.
    inputs : sequence of str or Path
        Image files, folders or glob patterns.
    out_dir : str or Path
        Output folder (created if needed).
    config : ObjectnessConfig
    classes : sequence of str, optional
        Class order when ``points`` is a file (default: sorted names).
    axes : str, optional
        Axes override for the images (e.g. ``"CZYX"``).
    preview : bool
        Also write ``<stem>.preview.png``.
    stain_target : str or Path, optional
        RGB target image for stain normalisation (required when ``config.stain_method`` is set).
    tune_masks : str or Path, optional
        Folder with label masks; choose ``w`` and diffusion iterations on the images that have one.
    diffusion_grid : sequence of int
        Diffusion iterations tried by tuning.
    workers : int
        Images processed at once, each in its own process (1: one after the other, in this
        process). Outputs are identical either way.
    progress : callable, optional
        ``progress(task, done, total)``.
    voxel_size : sequence of float, optional
        Override of the images' stored voxel size in µm (one value, or one per spatial axis);
        written into the outputs.
    use_voxel_size : bool, optional
        Grow with each image's voxel size as ``spacing`` when ``config.spacing`` is not set;
        None follows ``config.voxel_spacing`` (on by default).

    Per-image input errors are recorded in the outcome and do not stop the batch.
    """
    progress = progress or noop_progress
    if workers < 1:
        raise ConfigError(f"workers must be >= 1; got {workers}")
    points = _points(points, classes)
    grid = tuple(int(d) for d in diffusion_grid)
    if tune_masks is not None and (not grid or min(grid) < 0):
        raise ConfigError(f"diffusion iterations tried by tuning must be one or more values >= 0; got {list(grid)}")
    paths = find_images(inputs)
    with_points = set(points.stems)
    pairs = [(p, image_stem(p)) for p in paths if image_stem(p) in with_points]
    skipped = tuple(image_stem(p) for p in paths if image_stem(p) not in with_points)
    missing = tuple(sorted(with_points - {s for _, s in pairs}))
    if not pairs:
        raise InputError(
            f"no image matches the points file: points name {', '.join(sorted(with_points)[:3]) or 'no image'}"
            f"{'...' if len(with_points) > 3 else ''}; images found: "
            f"{', '.join(image_stem(p) for p in paths[:3])}{'...' if len(paths) > 3 else ''}"
        )
    for stem in skipped:
        log.info("no points for image %s: skipped", stem)
    for stem in missing:
        log.warning("points for %s but no such image among the inputs", stem)
    if config.stain_method is not None and stain_target is None:
        raise InputError(f"stain method {config.stain_method!r} needs a target image (--stain-normalize TARGET)")
    target = read_image(stain_target) if stain_target is not None else None
    if target is not None and (target.ndim < 3 or target.shape[-1] != 3):
        raise ImageFormatError(f"stain target {str(stain_target)!r} must be RGB (Y, X, 3); got shape {target.shape}")

    if use_voxel_size is not None:
        config = replace(config, voxel_spacing=use_voxel_size)
    use_voxel_size = config.voxel_spacing
    out = Path(out_dir)
    _check_before_work(pairs, out, config=config, axes=axes, preview=preview)
    prepare_output_dir(out, what="--out")
    tuned = None
    if tune_masks is not None:
        if use_voxel_size and config.spacing is None:
            # tuning grows with one spacing: the images' voxel size when they share one
            sizes = {_voxel_size(path, axes, voxel_size) for path, _ in pairs}
            if len(sizes) == 1 and None not in sizes:
                config = replace(config, spacing=sizes.pop())
            elif len(sizes) > 1:
                log.warning("images have different voxel sizes: tuning grows without spacing")
        samples = _tune_samples(pairs, points, Path(tune_masks), axes, target)
        tuned = tune(samples, config, diffusion_grid=grid, progress=progress)
        config = tuned.apply(config)

    outcomes = _process_all(pairs, points, out, workers=workers, progress=progress, config=config, axes=axes,
                            preview=preview, target=target, voxel_size=voxel_size, use_voxel_size=use_voxel_size)

    sidecar = out / SIDECAR
    record = {
        "pointseg": __version__,
        "classes": ["background", *points.class_names],
        "w": config.w,
        "mode": config.mode,
        "cost": config.cost,
        "connectivity": config.connectivity,
        "use_voxel_size": use_voxel_size and config.spacing is None,
        "voxel_size_override": list(voxel_size) if voxel_size is not None else None,
        "preprocessing": {
            "stain_method": config.stain_method,
            "stain_target": str(stain_target) if stain_target is not None else None,
            "normalization": config.normalization.to_dict(),
            "equalize": config.equalize,
            "diffusion_iterations": config.diffusion_iterations,
            "diffusion_kappa": config.diffusion_kappa,
        },
        "config": config.to_dict() | {"stain_target": str(stain_target) if stain_target else None},
        "tune": None if tuned is None else {
            "masks": str(tune_masks), "w": tuned.w, "diffusion_iterations": tuned.diffusion_iterations,
            "iou": tuned.iou,
            "table": [{"diffusion_iterations": d, "w": w, "iou": s} for d, w, s in tuned.table],
        },
        "images": {o.stem: {"seeds": o.seeds, "shape": list(o.shape), "error": o.error, "skipped": o.note or None}
                   for o in outcomes},
    }
    with atomic_output(sidecar) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2))
    return ObjectnessRun(outcomes=tuple(outcomes), config=config, classes=tuple(points.class_names),
                         skipped=skipped, missing=missing, sidecar=sidecar, tuned=tuned)
