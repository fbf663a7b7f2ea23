"""One large volume on a Dask cluster: halo blocks on the global tile grid, written as OME-Zarr.

The volume is cut into blocks made of whole chunks of the output store. A worker segments its
block with :func:`~pointseg_cli.infer.blocks.segment_region`, which runs every tile of the
*whole image's* grid that touches the block (the halo) and blends them exactly as the
one-process engine does, so the labels equal the single-process labels voxel for voxel. Workers
write their blocks into a temporary ``.<stem>.labels.zarr.tmp-…`` store in parallel (disjoint
chunks); it is renamed to ``<stem>.labels.zarr`` only when every block is done. A failed block
is reported with its position and nothing appears under the final name.

With instances on, the blocks also write their blended centre maps (``centers`` method) into a
scratch store, and one more task makes ``<stem>.instances.zarr`` and ``<stem>.objects.csv`` from
the complete maps with the one-process algorithm (:mod:`pointseg_cli.distributed.instances`),
before anything is renamed.

The output folder must be visible to the workers under the same path (a shared file system on a
multi-machine cluster).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.distributed.files import worker_lost
from pointseg_cli.distributed.instances import InstancesDone, instances_task
from pointseg_cli.distributed.worker import ModelSpec, VolumePlan, plan_volume_task, segment_block_task
from pointseg_cli.errors import ConfigError, DeviceError, ModelError, PointsegError
from pointseg_cli.infer.batch import FileResult, SegmentConfig
from pointseg_cli.infer.options import output_paths
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

_KINDS = {"C": "channel", "Z": "space", "Y": "space", "X": "space"}


def volume_outputs(out_dir: Path, stem: str, config: SegmentConfig) -> dict[str, Path]:
    """Final outputs of the block mode: ``labels`` (and ``instances``, ``probabilities``) as OME-Zarr,
    ``objects`` CSV, ``preview`` PNG."""
    return output_paths(out_dir, stem, config, arrays="zarr")


def store_chunks(spatial: Sequence[int], chunks: Sequence[int] | None = None) -> tuple[int, ...]:
    """Chunk shape of the label store: ``chunks``, or 32 planes × 256 × 256 for volumes, 512 × 512 in 2D."""
    if chunks is not None:
        if len(chunks) != len(spatial):
            raise ConfigError(f"chunks must have {len(spatial)} sizes for this image {tuple(spatial)}; got {chunks}")
        return tuple(min(int(s), int(c)) for s, c in zip(spatial, chunks, strict=True))
    if len(spatial) == 3:
        return (min(spatial[0], 32), min(spatial[1], 256), min(spatial[2], 256))
    return tuple(min(s, 512) for s in spatial)


def plan_blocks(
    shape: Sequence[int], chunks: Sequence[int], *, max_voxels: int, min_blocks: int = 1
) -> list[tuple[slice, ...]]:
    """Cut ``shape`` into blocks of whole chunks, C order.

    Starting from one block, the longest block axis is halved (in chunks) until a block has at
    most ``max_voxels`` voxels and there are at least ``min_blocks`` blocks, or blocks are one
    chunk.
    """
    n_chunks = [math.ceil(s / c) for s, c in zip(shape, chunks, strict=True)]
    per = list(n_chunks)

    def count() -> int:
        return math.prod(math.ceil(n / p) for n, p in zip(n_chunks, per, strict=True))

    while math.prod(p * c for p, c in zip(per, chunks, strict=True)) > max_voxels or count() < min_blocks:
        axes = [a for a in range(len(per)) if per[a] > 1]
        if not axes:
            break
        a = max(axes, key=lambda k: (per[k] * chunks[k], k))
        per[a] = math.ceil(per[a] / 2)
    size = [p * c for p, c in zip(per, chunks, strict=True)]
    ranges = [range(0, s, b) for s, b in zip(shape, size, strict=True)]
    return [
        tuple(slice(lo, min(lo + b, s)) for lo, b, s in zip(corner, size, shape, strict=True))
        for corner in itertools.product(*ranges)
    ]

def describe_block(region: Sequence[slice], axes: str) -> str:
    """``z 0:64, y 512:1024, x 0:512``."""
    return ", ".join(f"{a.lower()} {s.start}:{s.stop}" for a, s in zip(axes, region, strict=True))


def _create_store(path: Path, shape: tuple[int, ...], *, dtype: Any, chunks: tuple[int, ...], axes: str,
                  scale: Sequence[float], extra: dict[str, Any]) -> None:
    import zarr

    root = zarr.open_group(str(path), mode="w")
    root.create_array("0", shape=shape, dtype=dtype, chunks=chunks, fill_value=0)
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [{"name": a.lower(), "type": _KINDS[a]} for a in axes],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]}],
        }
    ]
    root.attrs["pointseg"] = extra


def run_volume(
    client: Any,
    path: Path,
    config: SegmentConfig,
    *,
    out_dir: Path,
    spec: ModelSpec,
    block_voxels: int,
    chunks: Sequence[int] | None = None,
    min_blocks: int = 1,
    progress: ProgressCallback | None = None,
) -> FileResult:
    """Segment one volume in halo blocks on ``client``'s cluster; see the module docstring.

    Returns a ``failed`` result (naming the block and its position, or the instance step) when a
    task fails; raises :class:`~pointseg_cli.errors.PointsegError` for errors of the model,
    device or settings (``--instances centers`` for a model without a centre output).
    """
    from pointseg_cli.io.images import atomic_output, read_info
    from pointseg_cli.io.writers import scratch_file

    if config.probabilities == "tif":
        raise ConfigError("the block mode writes probabilities as OME-Zarr; use --probabilities zarr")
    t_start = time.perf_counter()
    try:
        info = read_info(path, axes=config.axes)
    except PointsegError as exc:
        return FileResult(path, "failed", str(exc))
    shape = tuple(info.shape)
    targets = volume_outputs(out_dir, info.stem, config)
    if not config.overwrite and all(p.exists() for p in targets.values()):
        return FileResult(path, "skipped", "outputs exist", shape=shape)
    try:
        plan: VolumePlan = client.submit(plan_volume_task, str(path), config=config, spec=spec, pure=False).result()
    except (ConfigError, ModelError, DeviceError):
        raise  # the batch's settings, not this file
    except PointsegError as exc:
        return FileResult(path, "failed", str(exc), shape=shape)
    spatial = plan.grid.shape
    chunks = store_chunks(spatial, chunks)
    blocks = plan_blocks(spatial, chunks, max_voxels=block_voxels, min_blocks=min_blocks)
    scale = list(plan.voxel_size) if plan.voxel_size else [1.0] * len(spatial)
    extra = {"classes": ["background", *plan.classes], "model": spec.model, "input": path.name,
             "grid": {"tile": list(plan.grid.tile), "overlap": plan.grid.overlap}}
    try:
        with contextlib.ExitStack() as stack:
            tmp = {k: stack.enter_context(atomic_output(p)) for k, p in targets.items()}
            _create_store(tmp["labels"], spatial, dtype=np.uint8, chunks=chunks, axes=plan.spatial_axes,
                          scale=scale, extra=extra)
            if "probabilities" in tmp:
                _create_store(tmp["probabilities"], (plan.n_outputs, *spatial), dtype=np.float16,
                              chunks=(1, *chunks), axes="C" + plan.spatial_axes, scale=[1.0, *scale], extra=extra)
            centres = None
            if plan.instance_method == "centers":  # the blended centre map, until the ids are made
                centres = stack.enter_context(scratch_file(out_dir / f"{info.stem}.centers.zarr"))
                _create_store(centres, spatial, dtype=np.float32, chunks=chunks, axes=plan.spatial_axes,
                              scale=scale, extra=extra)
            if "instances" in tmp:
                _create_store(tmp["instances"], spatial, dtype=np.uint32, chunks=chunks, axes=plan.spatial_axes,
                              scale=scale, extra={**extra, "instances": {"method": plan.instance_method}})
            tiles = _run_blocks(client, path, blocks, plan=plan, config=config, spec=spec, tmp=tmp, centres=centres,
                                task=f"{info.stem} blocks", progress=progress)
            if "instances" in tmp:
                _run_instances(client, path, plan=plan, config=config, tmp=tmp, centres=centres,
                               scratch=out_dir / f"{info.stem}.instances", task=f"{info.stem} instances",
                               progress=progress)
            if "preview" in tmp:
                _write_preview(tmp["preview"], path, tmp["labels"], plan, config)
    except _StepFailed as exc:
        return FileResult(path, "failed", str(exc), shape=shape, provider=plan.provider)
    seconds = time.perf_counter() - t_start
    voxels = int(np.prod(spatial))
    log.info("%s: %s in %d blocks, %.2f s (%.2f Mvox/s, %d tiles)", info.stem, spatial, len(blocks), seconds,
             voxels / max(seconds, 1e-9) / 1e6, tiles)
    return FileResult(path, "ok", shape=shape, seconds=seconds, voxels_per_second=voxels / max(seconds, 1e-9),
                      provider=plan.provider, outputs=dict(targets))


class _StepFailed(Exception):
    """A block or the instance step failed: the message names which (and the block's position)."""


def _failure(where: str, exc: BaseException) -> _StepFailed:
    if worker_lost(exc):
        return _StepFailed(f"{where}: the Dask worker died (killed, or out of memory: try a smaller block "
                           "or --batch-size)")
    if isinstance(exc, PointsegError):
        return _StepFailed(f"{where}: {exc}")
    return _StepFailed(f"{where}: {type(exc).__name__}: {' '.join(str(exc).split())}")


def _run_blocks(client: Any, path: Path, blocks: list[tuple[slice, ...]], *, plan: VolumePlan,
                config: SegmentConfig, spec: ModelSpec, tmp: dict[str, Path], centres: Path | None, task: str,
                progress: ProgressCallback | None) -> int:
    from distributed import as_completed

    run_id = uuid.uuid4().hex[:8]
    futures = [
        client.submit(segment_block_task, str(path), region, index=i, plan=plan, config=config, spec=spec,
                      labels_store=str(tmp["labels"]),
                      probabilities_store=str(tmp["probabilities"]) if "probabilities" in tmp else None,
                      centers_store=str(centres) if centres is not None else None,
                      key=f"pointseg-block-{run_id}-{i}")
        for i, region in enumerate(blocks)
    ]
    index = {f.key: i for i, f in enumerate(futures)}
    tiles = done = 0
    if progress is not None:
        progress(task, 0, len(blocks))
    try:
        for fut in as_completed(futures, loop=client.loop):
            if fut.status == "error":
                i = index[fut.key]
                where = f"block {i + 1} of {len(blocks)} ({describe_block(blocks[i], plan.spatial_axes)})"
                raise _failure(where, fut.exception())
            tiles += fut.result().tiles
            # Forget the finished block: were its worker to die now, Dask would run it again and
            # rewrite its chunks while the instance step reads them.
            fut.release()
            done += 1
            if progress is not None:
                progress(task, done, len(blocks))
    finally:
        client.cancel([f for f in futures if not f.done()])
    return tiles


def _run_instances(client: Any, path: Path, *, plan: VolumePlan, config: SegmentConfig, tmp: dict[str, Path],
                   centres: Path | None, scratch: Path, task: str, progress: ProgressCallback | None) -> None:
    """The instance step on one worker, over the complete temporary stores."""
    if progress is not None:
        progress(task, 0, 1)
    fut = client.submit(instances_task, str(path), labels_store=str(tmp["labels"]),
                        centers_store=str(centres) if centres is not None else None,
                        instances_store=str(tmp["instances"]), objects_path=str(tmp["objects"]), scratch=str(scratch),
                        method=plan.instance_method, axes=config.axes, voxel_size=plan.voxel_size,
                        classes=plan.classes, min_distance=config.min_distance,
                        peak_threshold=config.peak_threshold, key=f"pointseg-instances-{uuid.uuid4().hex[:8]}")
    try:
        done: InstancesDone = fut.result()
    except Exception as exc:  # noqa: BLE001 - turned into this input's failure, with the reason
        raise _failure(f"instances ({plan.instance_method})", exc) from None
    finally:
        client.cancel([fut])
    log.info("%s: %d objects (%d connected components, method %s) in %.2f s", path.name, done.n_instances,
             done.n_components, plan.instance_method, done.seconds)
    if progress is not None:
        progress(task, 1, 1)


def _write_preview(tmp: Path, path: Path, labels_store: Path, plan: VolumePlan, config: SegmentConfig) -> None:
    """The one-process preview (middle plane, strided to about 1024 px) from the finished label store."""
    import zarr

    from pointseg_cli.infer.outputs import write_preview
    from pointseg_cli.infer.segment import PREVIEW_SIZE
    from pointseg_cli.io.images import open_image
    from pointseg_cli.preprocess.normalize import apply_normalization
    from pointseg_cli.preprocess.stain import apply_stains

    spatial = plan.grid.shape
    step = max(1, -(-max(spatial[-2:]) // PREVIEW_SIZE))
    inplane = (slice(None, None, step), slice(None, None, step))
    mid = spatial[0] // 2 if len(spatial) == 3 else None
    region = (slice(mid, mid + 1), *inplane) if mid is not None else inplane
    image = open_image(path, axes=config.axes)
    raw = image.read(region)
    labels = np.asarray(zarr.open_array(str(labels_store / "0"), mode="r")[region])
    if plan.stain_reference is not None and plan.stain_source is not None:
        raw = apply_stains(raw, plan.stain_source, plan.stain_reference)
    ch_axis = -1 if image.info.channels > 1 else None
    plane = apply_normalization(raw, plan.stats, channel_axis=ch_axis, clip=True)
    write_preview(tmp, plane[0] if mid is not None else plane, labels[0] if mid is not None else labels)

