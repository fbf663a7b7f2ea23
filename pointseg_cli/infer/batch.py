"""Segment many files: the batch behind ``pointseg segment``, one result per input.

:func:`run_segment` expands the inputs (files, folders, glob patterns), loads each model once
(the given one, or the default model of each input kind), and calls :func:`segment_one` per file.
:func:`segment_one` is the unit of work: it reads the file's header, skips it when all its outputs
exist (unless ``overwrite``), segments it with :func:`~pointseg_cli.infer.segment.segment_file`
and turns a failure of that file into a ``failed`` result, so that one bad file costs one file.
A distributed layer can run :func:`segment_one` as one task per file with a
:class:`PredictorCache` per worker.

Errors that concern the whole batch rather than one file (an unknown model, an unusable device,
a ``tile`` or ``axes`` that does not fit the model or an input, an output folder that cannot be
written) are raised as :class:`~pointseg_cli.errors.PointsegError` by :func:`check_batch` and
:func:`run_segment` before any file is segmented. Without a model, an input whose kind has no
default model fails on its own and the others are segmented (when no input has one, the batch
raises). Outputs go to ``out_dir``, or beside each input when it is None.

Two runs writing into the same folder never compute the same file: :func:`segment_one` holds a
per-input lock (:mod:`pointseg_cli.io.locks`) while it works, and an input locked by another run
is skipped with the message ``locked by another run``. Temporary files and locks of killed runs
are removed when the next run starts (:func:`pointseg_cli.io.writers.prepare_output_dir`).

Example
-------
>>> from pointseg_cli.infer.batch import SegmentConfig, run_segment
>>> result = run_segment(["volumes/"], SegmentConfig(probabilities="zarr"), out_dir="seg",
...                      model="nuclei-3d", device="cpu")  # doctest: +SKIP
>>> [(f.path.name, f.status) for f in result.files]  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from pointseg_cli.errors import ModelError, PointsegError
from pointseg_cli.infer.cache import PredictorCache
from pointseg_cli.infer.checks import check_batch
from pointseg_cli.infer.config import AXIS_LETTERS, SegmentConfig
from pointseg_cli.infer.options import output_paths
from pointseg_cli.infer.outputs import provenance, written_by_pointseg
from pointseg_cli.infer.predictors import Predictor
from pointseg_cli.infer.results import STATUSES, FileResult, ModelInfo, SegmentBatchResult
from pointseg_cli.infer.segment import segment_file
from pointseg_cli.io.locks import try_lock
from pointseg_cli.io.writers import check_output_dir, prepare_output_dir
from pointseg_cli.model.spec import input_kind
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

__all__ = [
    "AXIS_LETTERS",
    "NO_DEFAULT",
    "STATUSES",
    "FileResult",
    "ModelInfo",
    "PredictorCache",
    "SegmentBatchResult",
    "SegmentConfig",
    "run_segment",
    "segment_one",
]

#: Start of the message of an input whose kind has no default model.
NO_DEFAULT = "pointseg has no default model"


def _written_since(paths: dict[str, Path], since: float | None) -> bool:
    """True when all ``paths`` exist and were written at or after ``since`` (by a concurrent run)."""
    if since is None:
        return False
    try:
        return all(os.stat(p).st_mtime >= since for p in paths.values())
    except OSError:
        return False


def segment_one(
    path: str | Path,
    *,
    config: SegmentConfig,
    out_dir: str | Path | None,
    predictors: PredictorCache,
    progress: ProgressCallback | None = None,
    since: float | None = None,
) -> FileResult:
    """Segment one input file into ``out_dir`` (None: beside the input) and say what happened.

    A file that cannot be read, segmented or written (a :class:`~pointseg_cli.errors.PointsegError`,
    an ``OSError`` or a ``MemoryError``), or whose kind has no default model when no model was
    given, gives a ``failed`` result; errors of the batch itself (a bad model or device) propagate.
    While it works, the input's outputs are locked (:func:`pointseg_cli.io.locks.try_lock`): an
    input that another run is segmenting into the same folder is ``skipped`` with the message
    ``locked by another run``.

    Parameters
    ----------
    path : path-like
        The image.
    config : SegmentConfig
        Tiling, outputs, skip/overwrite and axes.
    out_dir : path-like or None
        Output folder, or None to write beside the input.
    predictors : PredictorCache
        Gives the model for the input's kind.
    progress : callable, optional
        ``progress(task, done, total)`` per tile (task = the file's stem).
    since : float, optional
        Start time (``time.time()``) of the batch: with ``overwrite``, outputs written after it
        come from a concurrent run and are not computed again.

    Returns
    -------
    FileResult
    """
    from pointseg_cli.io.images import read_info

    path = Path(path)
    try:
        info = read_info(path, axes=config.axes)
    except PointsegError as exc:
        return FileResult(path, "failed", str(exc))
    shape = tuple(info.shape)
    folder = Path(out_dir) if out_dir is not None else path.parent
    targets = output_paths(folder, info.stem, config)
    if targets["labels"].is_file() and not written_by_pointseg(targets["labels"]):
        return FileResult(path, "failed", f"'{targets['labels']}' exists and was not written by pointseg segment "
                          "(ground truth?): it is left alone; use --out-dir or move it", shape=shape)
    if not config.overwrite and all(p.exists() for p in targets.values()):
        return FileResult(path, "skipped", "outputs exist", shape=shape)
    kind = input_kind(info.ndim, info.channels)
    if not predictors.has_model(kind):
        return FileResult(path, "failed", f"{NO_DEFAULT} for {kind} inputs: pass --model NAME or PATH "
                          "(see 'pointseg models list')", shape=shape)
    pred = predictors.for_kind(kind)
    model = predictors.info(kind)
    if config.instances != "none":
        try:
            predictors.instance_method(kind, config.instances)
        except PointsegError as exc:  # centers for a default model without the head (the batch checked the given one)
            return FileResult(path, "failed", str(exc), shape=shape, model=model.name)
    prov = provenance(model=model.name, model_sha256=model.sha256, options=config.provenance_options())
    try:
        lock = try_lock(folder, info.stem, task="segment")
    except OSError as exc:
        return FileResult(path, "failed", f"cannot lock its outputs in '{folder}': {exc.strerror or exc}",
                          shape=shape)
    if lock is None:
        return FileResult(path, "skipped", "locked by another run", shape=shape)
    with lock:
        # another run may have finished this input between the check above and the lock
        if not config.overwrite and all(p.exists() for p in targets.values()):
            return FileResult(path, "skipped", "outputs exist", shape=shape)
        if config.overwrite and _written_since(targets, since):
            return FileResult(path, "skipped", "written by another run", shape=shape)
        try:
            res = segment_file(path, folder, pred, options=config, axes=config.axes, voxel_size=config.voxel_size,
                               provenance=prov, progress=progress)
        except PointsegError as exc:
            log.debug("segment failed for %s", path, exc_info=True)
            return FileResult(path, "failed", str(exc), shape=shape, provider=pred.provider, model=model.name)
        except MemoryError:
            return FileResult(path, "failed", "out of host memory (try a smaller --tile or --batch-size)",
                              shape=shape, provider=pred.provider, model=model.name)
        except OSError as exc:  # e.g. the disk filled up or a folder became unwritable while writing
            log.debug("segment failed for %s", path, exc_info=True)
            where = f" ({exc.filename})" if exc.filename else ""
            return FileResult(path, "failed", f"cannot read or write{where}: {exc.strerror or exc}",
                              shape=shape, provider=pred.provider, model=model.name)
    outputs = {"labels": res.labels, "instances": res.instances, "objects": res.objects,
               "probabilities": res.probabilities, "preview": res.preview}
    return FileResult(
        path, "ok", shape=shape, seconds=res.seconds, voxels_per_second=res.voxels_per_second,
        provider=res.provider, outputs={k: v for k, v in outputs.items() if v is not None}, model=model.name,
    )


def run_segment(
    inputs: Sequence[str | Path],
    config: SegmentConfig | None = None,
    *,
    out_dir: str | Path | None = None,
    model: str | Path | Predictor | None = None,
    device: str = "cpu",
    progress: ProgressCallback | None = None,
) -> SegmentBatchResult:
    """Segment images and volumes, one file at a time, writing ``<stem>.labels.tif`` and friends.

    Parameters
    ----------
    inputs : sequence of str or Path
        Image files, folders (listed non-recursively) or glob patterns.
    config : SegmentConfig, optional
        Tiling, outputs, precision, overwrite, axes (defaults when None).
    out_dir : path-like, optional
        Output folder, created when the model has been checked; None (default) writes each
        input's outputs beside it.
    model : str, Path, Predictor or None
        See :class:`PredictorCache` (None: the default model of each input's kind).
    device : {"cpu", "cuda"}
        Resolved device; see :func:`pointseg_cli.devices.resolve_device`.
    progress : callable, optional
        ``progress("all files", i, n)`` per file and ``progress(stem, done, total)`` per tile.

    Returns
    -------
    SegmentBatchResult
        One :class:`FileResult` per input; the caller decides what failed files mean.

    Raises
    ------
    PointsegError
        Before any file is segmented: no input found, a bad model, precision or device, a tile or
        axes that do not fit (:func:`check_batch`), an output folder that is a file or not
        writable. After the batch: no default model for any input (nothing could be segmented).
    """
    from pointseg_cli.io.images import find_images

    config = config or SegmentConfig()
    since = time.time()
    predictors = PredictorCache(model, device=device, precision=config.precision, stain=config.stain)
    paths = find_images(inputs)
    predictors.preload()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        check_output_dir(out, what="--out-dir")
    check_batch(paths, config, out_dir=out, predictors=predictors)
    folders = [out] if out is not None else sorted({p.parent for p in paths})
    for folder in folders:
        prepare_output_dir(folder, what="--out-dir" if out is not None else "input folder")
    results: list[FileResult] = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress("all files", i, len(paths))
        results.append(segment_one(path, config=config, out_dir=out, predictors=predictors, progress=progress,
                                   since=since))
    if progress is not None:
        progress("all files", len(paths), len(paths))
    if results and all(r.status == "failed" and r.message.startswith(NO_DEFAULT) for r in results):
        raise ModelError(results[0].message)  # nothing could be segmented: a usage error, not a batch failure
    return SegmentBatchResult(files=tuple(results), out_dir=out, models=predictors.models)
