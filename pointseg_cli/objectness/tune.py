"""Choose ``w`` (and diffusion iterations) on images with full masks.

The objective is the pooled IoU between ``Obj > 0.5`` and the mask foreground (label > 0) over
all tuning images. Because ``exp(-w d) > 0.5`` exactly when ``d < ln 2 / w``, the distances of a
preprocessing setting are computed once and every ``w`` in the bounds is evaluated at once by a
sorted threshold sweep: the search over ``w`` is exhaustive and exact, and only the (few)
diffusion settings on the grid cost a region-growing run each. (The paper used Bayesian
optimisation for the same purpose.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.io.points import PointTable
from pointseg_cli.objectness.pipeline import ObjectnessConfig, objectness_for_image, spacing_for
from pointseg_cli.progress import ProgressCallback, noop_progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneSample:
    """One tuning image: canonical pixels, its points and its label mask (spatial shape)."""

    name: str
    image: np.ndarray
    points: PointTable
    mask: np.ndarray
    channel_axis: int | None = None
    stain_target: np.ndarray | None = None
    voxel_size: tuple[float, ...] | None = None  # used as spacing per spacing_for()

    def __post_init__(self) -> None:
        spatial = self.image.shape[:-1] if self.channel_axis is not None else self.image.shape
        if self.mask.shape != spatial:
            raise InputError(
                f"mask of {self.name!r} has shape {self.mask.shape}; expected the image's spatial shape {spatial}"
            )


@dataclass(frozen=True)
class TuneResult:
    """Chosen settings and the score table (one row per diffusion setting)."""

    w: float
    diffusion_iterations: int
    iou: float
    table: tuple[tuple[int, float, float], ...]  # (diffusion iterations, best w, pooled IoU)

    def apply(self, config: ObjectnessConfig) -> ObjectnessConfig:
        return replace(config, w=self.w, diffusion_iterations=self.diffusion_iterations)


def best_w(
    distances: np.ndarray, foreground: np.ndarray, *, w_bounds: tuple[float, float] = (0.1, 1e4)
) -> tuple[float, float]:
    """Exact maximiser of IoU(``d < ln2 / w``, ``foreground``) over ``w`` in ``w_bounds``.

    Parameters
    ----------
    distances : np.ndarray
        float ``(n,)`` region-growing distances (inf where unreached).
    foreground : np.ndarray
        bool ``(n,)`` mask foreground.

    Returns
    -------
    (w, iou)
    """
    lo_w, hi_w = w_bounds
    if not 0 < lo_w < hi_w:
        raise ConfigError(f"w bounds must satisfy 0 < low < high; got {w_bounds}")
    d = np.asarray(distances, np.float64).ravel()
    fg = np.asarray(foreground, bool).ravel()
    n_fg = int(fg.sum())
    if n_fg == 0:
        raise InputError("tuning masks have no foreground (label > 0); expected labelled objects")
    ds = np.sort(d)
    tp = np.concatenate([[0], np.cumsum(fg[np.argsort(d, kind="stable")])])  # fg among the i smallest
    finite = ds[np.isfinite(ds)]
    # candidate thresholds: midpoints between distinct distances, one past the largest, and the
    # bounds; each is clamped into the bounds and scored by how many distances fall below it
    uniq = np.unique(finite)
    mids = 0.5 * (uniq[:-1] + uniq[1:])
    t_lo, t_hi = math.log(2) / hi_w, math.log(2) / lo_w
    extra = [uniq[-1] * 1.5 + 1e-6] if uniq.size else []
    t = np.clip(np.concatenate([mids, extra, [t_lo, t_hi]]), t_lo, t_hi)
    cut = np.searchsorted(ds, t, side="left")
    iou = tp[cut] / (n_fg + cut - tp[cut])
    i = int(np.argmax(iou))
    return float(math.log(2) / t[i]), float(iou[i])


def tune(
    samples: Sequence[TuneSample],
    config: ObjectnessConfig,
    *,
    diffusion_grid: Sequence[int] = (0, 5, 10, 20, 40),
    w_bounds: tuple[float, float] = (0.1, 1e4),
    progress: ProgressCallback | None = None,
) -> TuneResult:
    """Pick ``w`` and diffusion iterations maximising the pooled IoU of ``Obj > 0.5`` with the masks."""
    if not samples:
        raise InputError("no tuning images: expected images that have both points and a mask")
    progress = progress or noop_progress
    rows: list[tuple[int, float, float]] = []
    total = len(diffusion_grid) * len(samples)
    done = 0
    for iters in diffusion_grid:
        cfg = replace(config, diffusion_iterations=int(iters))
        ds, fgs = [], []
        for s in samples:
            res = objectness_for_image(
                s.image, s.points, config=spacing_for(cfg, s.voxel_size), channel_axis=s.channel_axis,
                stain_target=s.stain_target,
            )
            ds.append(res.distance.ravel())
            fgs.append((s.mask > 0).ravel())
            done += 1
            progress("tune", done, total)
        w, iou = best_w(np.concatenate(ds), np.concatenate(fgs), w_bounds=w_bounds)
        log.info("tune: diffusion %d -> w %.4g, IoU %.4f", iters, w, iou)
        rows.append((int(iters), w, iou))
    best = max(rows, key=lambda r: (r[2], -r[0]))
    return TuneResult(w=best[1], diffusion_iterations=best[0], iou=best[2], table=tuple(rows))
