"""Segment many files: the batch behind ``pointseg segment``, one result per input.

:func:`run_segment` expands the inputs (files, folders, glob patterns), loads each model once
(the given one, or the default model of each input kind), and calls :func:`segment_one` per file.
:func:`segment_one` is the unit of work: it reads the file's header, skips it when all its outputs
exist (unless ``overwrite``), segments it with :func:`~pointseg_cli.infer.segment.segment_file`
and turns a failure of that file into a ``failed`` result, so that one bad file costs one file.
A distributed layer can run :func:`segment_one` as one task per file with a
:class:`PredictorCache` per worker.

Errors that concern the whole batch rather than one file (an unknown model, no default model
for an input kind, an unusable device, a ``tile`` or ``axes`` that does not fit the model or an
input, an output folder that cannot be written) are raised as
:class:`~pointseg_cli.errors.PointsegError` by :func:`check_batch` and :func:`run_segment` before
any file is segmented.

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
from dataclasses import dataclass, field
from pathlib import Path

from pointseg_cli.devices import RESOLVED_DEVICES
from pointseg_cli.errors import ConfigError, PointsegError, check_choice
from pointseg_cli.infer.checks import check_batch
from pointseg_cli.infer.predictors import Predictor, make_predictor
from pointseg_cli.infer.segment import SegmentOptions, output_paths, segment_file
from pointseg_cli.io.locks import try_lock
from pointseg_cli.io.writers import check_output_dir, prepare_output_dir
from pointseg_cli.model.spec import PRECISION_CHOICES, input_kind
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

#: Outcome of one input.
STATUSES = ("ok", "skipped", "failed")
#: Letters ``axes`` may use (S, samples, is read as C).
AXIS_LETTERS = "TZCYXS"


@dataclass(frozen=True)
class SegmentConfig(SegmentOptions):
    """Settings of a :func:`run_segment` batch: the tiling and outputs of :class:`SegmentOptions`, plus

    Attributes
    ----------
    precision : {"auto", "fp32", "fp16"}
        Checkpoints: ``auto`` is fp16 on CUDA, fp32 on the CPU. ONNX models: fixed at export, a
        value other than ``auto`` must match it.
    overwrite : bool
        Redo inputs whose outputs all exist (otherwise they are skipped).
    axes : str, optional
        Override of the stored axes of every input, e.g. ``"CZYX"`` (letters T, Z, C, Y, X; S = C).
    """

    precision: str = "auto"
    overwrite: bool = False
    axes: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("precision", self.precision, PRECISION_CHOICES)
        if self.axes is not None:
            axes = str(self.axes).upper()
            if not axes or any(c not in AXIS_LETTERS for c in axes) or len(set(axes)) != len(axes):
                raise ConfigError(
                    f"axes must be distinct letters from {', '.join(AXIS_LETTERS)} (e.g. ZYX, CZYX, YXC); "
                    f"got {self.axes!r}"
                )


@dataclass(frozen=True)
class FileResult:
    """What happened to one input.

    Attributes
    ----------
    path : Path
        The input.
    status : {"ok", "skipped", "failed"}
        ``skipped``: all its outputs existed; ``failed``: see ``message``.
    message : str
        Why it was skipped or failed (empty when ok).
    shape : tuple of int or None
        Canonical image shape (None when the file could not be read).
    seconds : float or None
        Wall time of the segmentation (ok only).
    voxels_per_second : float or None
        Spatial voxels per second (ok only).
    provider : str
        Backend that ran the model (e.g. ``CPUExecutionProvider``, ``torch-cuda``); empty when no
        model was run.
    outputs : dict of str to Path
        Files written, by kind (``labels``, ``probabilities``, ``preview``).
    """

    path: Path
    status: str
    message: str = ""
    shape: tuple[int, ...] | None = None
    seconds: float | None = None
    voxels_per_second: float | None = None
    provider: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("status", self.status, STATUSES)


@dataclass(frozen=True)
class SegmentBatchResult:
    """Per-file results of :func:`run_segment`, in input order."""

    files: tuple[FileResult, ...]
    out_dir: Path

    def _count(self, status: str) -> int:
        return sum(f.status == status for f in self.files)

    @property
    def n_ok(self) -> int:
        return self._count("ok")

    @property
    def n_skipped(self) -> int:
        return self._count("skipped")

    @property
    def n_failed(self) -> int:
        return self._count("failed")

    @property
    def failures(self) -> tuple[FileResult, ...]:
        return tuple(f for f in self.files if f.status == "failed")


class PredictorCache:
    """One predictor per model, made on first use: the given model, or the default of each input kind.

    Parameters
    ----------
    model : str, Path, Predictor or None
        Registered model name, ``.onnx`` file, run directory / ``.pt`` checkpoint, a ready
        :class:`~pointseg_cli.infer.predictors.Predictor`, or None for the default model of each
        input kind (``2d-gray``, ``2d-rgb``, ``3d``).
    device : {"cpu", "cuda"}
        Resolved device (:func:`pointseg_cli.devices.resolve_device`).
    precision : {"auto", "fp32", "fp16"}
        See :class:`SegmentConfig`.
    stain : bool
        Whether stain normalisation is applied (only logged here).
    """

    def __init__(
        self, model: str | Path | Predictor | None, *, device: str, precision: str = "auto", stain: bool = True
    ) -> None:
        check_choice("device", device, RESOLVED_DEVICES)
        self.model = model
        self.device = device
        self.precision = precision
        self.stain = stain
        self._cache: dict[str, Predictor] = {}

    def preload(self) -> None:
        """Load the given model now, so that a bad model, device or precision fails before any work."""
        if self.model is not None:
            self.for_kind("3d")

    def for_kind(self, kind: str) -> Predictor:
        """The predictor for inputs of ``kind`` (the given model whatever the kind, when there is one)."""
        from pointseg_cli.zoo import resolve_model

        if isinstance(self.model, Predictor):
            return self.model
        key = str(self.model) if self.model is not None else kind
        if key not in self._cache:
            model_path = resolve_model(self.model, kind=kind)
            pred = make_predictor(model_path, device=self.device, precision=self.precision)
            log.info("model %s runs on %s", model_path, pred.provider)
            stain = pred.metadata.normalization.get("stain")
            if stain:
                log.info("stain normalisation to %s (%s) %s", stain.get("target", "the training target"),
                         stain.get("method"), "on" if self.stain else "skipped")
            self._cache[key] = pred
        return self._cache[key]


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
    out_dir: str | Path,
    predictors: PredictorCache,
    progress: ProgressCallback | None = None,
    since: float | None = None,
) -> FileResult:
    """Segment one input file into ``out_dir`` and say what happened.

    A file that cannot be read, segmented or written (a :class:`~pointseg_cli.errors.PointsegError`,
    an ``OSError`` or a ``MemoryError``) gives a ``failed`` result; errors of the batch itself (no
    model for this input's kind, a bad model or device) propagate. While it works, the input's
    outputs are locked (:func:`pointseg_cli.io.locks.try_lock`): an input that another run is
    segmenting into the same folder is ``skipped`` with the message ``locked by another run``.

    Parameters
    ----------
    path : path-like
        The image.
    config : SegmentConfig
        Tiling, outputs, skip/overwrite and axes.
    out_dir : path-like
        Existing output folder.
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
    targets = output_paths(out_dir, info.stem, config)
    if not config.overwrite and all(p.exists() for p in targets.values()):
        return FileResult(path, "skipped", "outputs exist", shape=shape)
    pred = predictors.for_kind(input_kind(info.ndim, info.channels))
    try:
        lock = try_lock(out_dir, info.stem, task="segment")
    except OSError as exc:
        return FileResult(path, "failed", f"cannot lock its outputs in '{out_dir}': {exc.strerror or exc}",
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
            res = segment_file(path, out_dir, pred, options=config, axes=config.axes, progress=progress)
        except PointsegError as exc:
            log.debug("segment failed for %s", path, exc_info=True)
            return FileResult(path, "failed", str(exc), shape=shape, provider=pred.provider)
        except MemoryError:
            return FileResult(path, "failed", "out of host memory (try a smaller --tile or --batch-size)",
                              shape=shape, provider=pred.provider)
        except OSError as exc:  # e.g. the disk filled up or a folder became unwritable while writing
            log.debug("segment failed for %s", path, exc_info=True)
            where = f" ({exc.filename})" if exc.filename else ""
            return FileResult(path, "failed", f"cannot read or write{where}: {exc.strerror or exc}",
                              shape=shape, provider=pred.provider)
    # Further per-file steps that work on the class map (e.g. object instances) go here.
    outputs = {"labels": res.labels, "probabilities": res.probabilities, "preview": res.preview}
    return FileResult(
        path, "ok", shape=shape, seconds=res.seconds, voxels_per_second=res.voxels_per_second,
        provider=res.provider, outputs={k: v for k, v in outputs.items() if v is not None},
    )


def run_segment(
    inputs: Sequence[str | Path],
    config: SegmentConfig | None = None,
    *,
    out_dir: str | Path,
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
    out_dir : path-like
        Output folder, created when the model has been checked.
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
        Before any file is segmented: no input found, a bad model, precision or device, no
        default model for an input kind, a tile or axes that do not fit (:func:`check_batch`),
        an output folder that is a file or not writable.
    """
    from pointseg_cli.io.images import find_images

    config = config or SegmentConfig()
    since = time.time()
    predictors = PredictorCache(model, device=device, precision=config.precision, stain=config.stain)
    paths = find_images(inputs)
    predictors.preload()
    out = Path(out_dir)
    check_output_dir(out, what="--out-dir")
    check_batch(paths, config, out_dir=out, predictors=predictors)
    out = prepare_output_dir(out, what="--out-dir")
    results: list[FileResult] = []
    for i, path in enumerate(paths):
        if progress is not None:
            progress("all files", i, len(paths))
        results.append(segment_one(path, config=config, out_dir=out, predictors=predictors, progress=progress,
                                   since=since))
    if progress is not None:
        progress("all files", len(paths), len(paths))
    return SegmentBatchResult(files=tuple(results), out_dir=out)
