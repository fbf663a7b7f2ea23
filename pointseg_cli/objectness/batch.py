"""Objectness over a folder of images: read, (tune,) grow, write outputs and the JSON sidecar.

Outputs per image (see docs/file formats): ``<stem>.objectness.tif`` float32 ``(K+1, *spatial)``,
``<stem>.regions.tif`` int32, ``<stem>.background.tif`` uint8, optional ``<stem>.preview.png``;
plus ``objectness.json`` in the output folder recording the configuration, class order and tuning.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
from pointseg_cli.io.masks import find_masks, read_labels
from pointseg_cli.io.points import PointTable, read_points_csv
from pointseg_cli.objectness.pipeline import ObjectnessConfig, grow_prepared, prepare_image, spacing_for
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


def _process(
    path: Path, stem: str, points: PointTable, out_dir: Path, *, config: ObjectnessConfig, axes: str | None,
    preview: bool, target: np.ndarray | None,
) -> ImageOutcome:
    t0 = time.perf_counter()
    image, ndim, ch, voxel = _load(path, axes)
    config = spacing_for(config, voxel)
    pts = points.for_image(stem)
    x = prepare_image(image, config, channel_axis=ch, stain_target=target)
    del image
    res = grow_prepared(x, pts, config=config, channel_axis=ch)
    spatial_axes = "ZYX"[3 - ndim:]
    meta = {"classes": ["background", *points.class_names], "w": config.w, "mode": config.mode,
            "cost": config.cost, "pointseg": __version__}
    outputs = [
        write_tiff(out_dir / f"{stem}.objectness.tif", res.soft_labels(len(points.class_names)),
                   axes="C" + spatial_axes, metadata=meta, compression="zlib"),
        write_tiff(out_dir / f"{stem}.regions.tif", res.regions, axes=spatial_axes, compression="zlib"),
        write_tiff(out_dir / f"{stem}.background.tif", res.background.astype(np.uint8), axes=spatial_axes,
                   compression="zlib"),
    ]
    if preview:
        seeds = pts.pixel_coords(ndim)
        outputs.append(write_png(out_dir / f"{stem}.preview.png", render_preview(x, res, seeds, channel_axis=ch)))
    return ImageOutcome(stem=stem, path=path, seeds=len(pts), shape=res.regions.shape, outputs=tuple(outputs),
                        seconds=time.perf_counter() - t0)


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
    progress: ProgressCallback | None = None,
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
    progress : callable, optional
        ``progress(task, done, total)``.

    Per-image input errors are recorded in the outcome and do not stop the batch.
    """
    progress = progress or noop_progress
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

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tuned = None
    if tune_masks is not None:
        samples = _tune_samples(pairs, points, Path(tune_masks), axes, target)
        tuned = tune(samples, config, diffusion_grid=grid, progress=progress)
        config = tuned.apply(config)

    outcomes = []
    for i, (path, stem) in enumerate(pairs):
        try:
            outcomes.append(_process(path, stem, points, out, config=config, axes=axes, preview=preview,
                                     target=target))
        except PointsegError as exc:
            log.debug("image %s failed", stem, exc_info=True)
            outcomes.append(ImageOutcome(stem=stem, path=path, seeds=len(points.for_image(stem)), shape=(),
                                         error=f"{stem}: {exc}"))
        progress("images", i + 1, len(pairs))

    sidecar = out / SIDECAR
    record = {
        "pointseg": __version__,
        "classes": ["background", *points.class_names],
        "w": config.w,
        "mode": config.mode,
        "cost": config.cost,
        "connectivity": config.connectivity,
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
        "images": {o.stem: {"seeds": o.seeds, "shape": list(o.shape), "error": o.error} for o in outcomes},
    }
    with atomic_output(sidecar) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2))
    return ObjectnessRun(outcomes=tuple(outcomes), config=config, classes=tuple(points.class_names),
                         skipped=skipped, missing=missing, sidecar=sidecar, tuned=tuned)
