"""What runs on a Dask worker: the per-worker model cache and the task functions.

Tasks are plain module-level functions, so they pickle by reference and every worker runs the
installed pointseg. Each worker process keeps one
:class:`~pointseg_cli.infer.batch.PredictorCache` per (model, device, precision, threads), made on
its first task: the model is loaded once per worker, not once per file or block.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.infer.batch import FileResult, PredictorCache, SegmentConfig, segment_one
from pointseg_cli.infer.tiling import TileGrid

log = logging.getLogger(__name__)

_CACHES: dict[tuple[Any, ...], PredictorCache] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: name or path (None: default of each input kind), device, threads.

    ``device`` may be ``auto``: it is resolved on the worker, whose hardware is what counts.
    """

    model: str | None
    device: str
    precision: str = "auto"
    stain: bool = True
    threads: int | None = None


def worker_predictors(spec: ModelSpec) -> PredictorCache:
    """This worker process's predictor cache for ``spec`` (made on first use)."""
    key = (spec.model, spec.device, spec.precision, spec.stain, spec.threads)
    with _LOCK:
        cache = _CACHES.get(key)
        if cache is None:
            from pointseg_cli.devices import resolve_device
            from pointseg_cli.zoo import model_backend

            device = resolve_device(spec.device, backend=model_backend(spec.model))
            cache = _CACHES[key] = PredictorCache(spec.model, device=device, precision=spec.precision,
                                                  stain=spec.stain, threads=spec.threads)
        return cache


def clear_caches() -> None:
    """Forget the loaded models of this process (tests)."""
    with _LOCK:
        _CACHES.clear()


def check_model_task(spec: ModelSpec, kind: str, instances: str = "none") -> str:
    """Load the model for inputs of ``kind`` on this worker; returns its provider (fails early on a bad
    model, or on ``instances="centers"`` for a model without a centre output)."""
    cache = worker_predictors(spec)
    if instances != "none":
        cache.instance_method(kind, instances)
    return cache.for_kind(kind).provider


def segment_file_task(path: str, *, config: SegmentConfig, out_dir: str, spec: ModelSpec) -> FileResult:
    """One input file, exactly as the one-process batch does it (:func:`~pointseg_cli.infer.batch.segment_one`)."""
    return segment_one(path, config=config, out_dir=out_dir, predictors=worker_predictors(spec))


@dataclass(frozen=True)
class VolumePlan:
    """What every block of one volume shares: the global grid and whole-image statistics.

    ``voxel_size`` is the one the outputs record (``config.voxel_size`` over the stored one);
    ``instance_method`` the resolved instance method (None: no instances).
    """

    shape: tuple[int, ...]
    spatial_axes: str
    voxel_size: tuple[float, ...] | None
    grid: TileGrid
    stats: Any
    stain_source: Any
    stain_reference: Any
    classes: tuple[str, ...]
    n_outputs: int
    provider: str
    instance_method: str | None = None


def plan_volume_task(path: str, *, config: SegmentConfig, spec: ModelSpec) -> VolumePlan:
    """Check the volume against the model and compute its grid and normalisation statistics."""
    from pointseg_cli.infer.blocks import whole_grid
    from pointseg_cli.infer.segment import _check_compatible, _stain_of, input_statistics
    from pointseg_cli.io.images import open_image
    from pointseg_cli.io.voxel import resolve_voxel_size
    from pointseg_cli.model.spec import input_kind

    image = open_image(path, axes=config.axes)
    info = image.info
    kind = input_kind(info.ndim, info.channels)
    cache = worker_predictors(spec)
    pred = cache.for_kind(kind)
    spatial = tuple(info.spatial_shape)
    _check_compatible(spatial, info.channels, info.axes, info.path.name, pred)
    method = cache.instance_method(kind, config.instances) if config.instances != "none" else "none"
    vsize = resolve_voxel_size(info.voxel_size, config.voxel_size, ndim=len(spatial), name=info.path.name)
    whole = input_statistics(image, pred, options=config, name=f"image '{info.path.name}'")
    return VolumePlan(
        shape=tuple(info.shape), spatial_axes=info.spatial_axes, voxel_size=vsize,
        grid=whole_grid(spatial, pred, config), stats=whole.stats, stain_source=whole.stain_source,
        stain_reference=_stain_of(pred, config), classes=tuple(pred.metadata.classes),
        n_outputs=pred.metadata.n_outputs, provider=pred.provider,
        instance_method=None if method == "none" else method,
    )


@dataclass(frozen=True)
class BlockDone:
    """A finished block: its tiles and seconds on the worker."""

    index: int
    tiles: int
    seconds: float


def segment_block_task(
    path: str, region: tuple[slice, ...], *, index: int, plan: VolumePlan, config: SegmentConfig, spec: ModelSpec,
    labels_store: str, probabilities_store: str | None = None, centers_store: str | None = None,
) -> BlockDone:
    """Segment one block on the global grid and write it into the (temporary) OME-Zarr stores.

    Blocks cover whole chunks of the stores (except at the image's far edges), so concurrent
    writes of different blocks never touch the same chunk. ``centers_store`` (a float32 store of
    the spatial shape) receives the blended centre map, for the instance step.
    """
    import zarr

    from pointseg_cli.infer.blocks import segment_region
    from pointseg_cli.io.images import open_image
    from pointseg_cli.model.spec import input_kind

    t0 = time.perf_counter()
    image = open_image(path, axes=config.axes)
    info = image.info
    pred = worker_predictors(spec).for_kind(input_kind(info.ndim, info.channels))
    res = segment_region(image, pred, plan.grid, region, stats=plan.stats, stain_source=plan.stain_source,
                         options=config, probabilities=probabilities_store is not None,
                         centers=centers_store is not None)
    image.release()
    # Opened only now (mode r+): if the run was abandoned and its temporary store removed, this
    # fails instead of recreating a stray store.
    zarr.open_array(str(Path(labels_store) / "0"), mode="r+")[region] = res.labels
    if probabilities_store is not None and res.probabilities is not None:
        zarr.open_array(str(Path(probabilities_store) / "0"), mode="r+")[(slice(None), *region)] = (
            res.probabilities.astype(np.float16)
        )
    if centers_store is not None and res.centers is not None:
        zarr.open_array(str(Path(centers_store) / "0"), mode="r+")[region] = res.centers
    return BlockDone(index=index, tiles=res.tiles, seconds=time.perf_counter() - t0)
