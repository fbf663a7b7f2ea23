"""The distributed batch: :func:`run_segment_distributed`, the Dask twin of ``run_segment``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pointseg_cli.distributed.cluster import ClusterConfig, connect, require_distributed
from pointseg_cli.distributed.files import run_files
from pointseg_cli.distributed.volume import run_volume
from pointseg_cli.distributed.worker import ModelSpec, check_model_task
from pointseg_cli.errors import ConfigError
from pointseg_cli.infer.batch import SegmentBatchResult, SegmentConfig
from pointseg_cli.io.writers import prepare_output_dir
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)


def run_segment_distributed(
    inputs: Sequence[str | Path],
    config: SegmentConfig | None = None,
    *,
    out_dir: str | Path,
    model: str | Path | None = None,
    device: str = "auto",
    cluster: ClusterConfig | None = None,
    progress: ProgressCallback | None = None,
) -> SegmentBatchResult:
    """Segment images on a Dask cluster; the same results as :func:`~pointseg_cli.infer.batch.run_segment`.

    Several inputs run as one task each (``<stem>.labels.tif`` and friends, exactly as one
    process writes them); a single input runs as halo blocks of one volume and writes
    ``<stem>.labels.zarr`` (OME-Zarr) with the same labels, and with instances on
    ``<stem>.instances.zarr`` and ``<stem>.objects.csv`` with the same objects (see ``cluster.mode``).

    Parameters
    ----------
    inputs : sequence of str or Path
        Image files, folders or glob patterns (expanded here, on the client).
    config : SegmentConfig, optional
        Tiling, outputs, precision, overwrite, axes.
    out_dir : path-like
        Output folder; on a multi-machine cluster it must be on a file system every worker sees.
    model : str or Path, optional
        Registered name, ``.onnx`` file or checkpoint (loaded once per worker); None: the default
        model of each input's kind. In-memory predictors cannot be sent to workers.
    device : {"auto", "cpu", "cuda"}
        Resolved on each worker, for the hardware it runs on.
    cluster : ClusterConfig, optional
        Local cluster (default) or scheduler address, workers, threads, mode.
    progress : callable, optional
        ``progress("all files", done, n)`` per file, ``progress("<stem> blocks", done, n)`` per block.

    Returns
    -------
    SegmentBatchResult

    Raises
    ------
    PointsegError
        dask not installed (with the install command), scheduler unreachable, no input, a bad
        model or device.
    """
    from pointseg_cli.io.images import find_images
    from pointseg_cli.model.spec import input_kind

    config = config or SegmentConfig()
    cluster = cluster or ClusterConfig()
    if model is not None and not isinstance(model, str | Path):
        raise ConfigError("the Dask mode loads the model on each worker: pass a model name or path, "
                          f"not a {type(model).__name__}")
    require_distributed()
    paths = find_images(inputs)
    blocks = cluster.mode == "blocks" or (cluster.mode == "auto" and len(paths) == 1)
    if blocks and len(paths) != 1:
        raise ConfigError(f"the block mode segments one volume; got {len(paths)} inputs")
    spec = ModelSpec(None if model is None else str(model), device, config.precision, config.stain,
                     cluster.worker_threads())
    out = Path(out_dir)
    with connect(cluster) as client:
        n_workers = len(client.scheduler_info()["workers"])
        if model is not None:  # a bad model or device fails before the output folder is made
            client.submit(check_model_task, spec, input_kind(3, 1), config.instances, pure=False).result()
        # as one process: create, check, and remove what killed runs (or workers) on this host left
        prepare_output_dir(out, what="--out-dir")
        if blocks:
            res = run_volume(client, paths[0], config, out_dir=out, spec=spec, block_voxels=cluster.block_voxels,
                             chunks=cluster.chunks, min_blocks=2 * max(1, n_workers), progress=progress)
            files = (res,)
        else:
            files = tuple(run_files(client, paths, config, out_dir=out, spec=spec, progress=progress))
    return SegmentBatchResult(files=files, out_dir=out)
