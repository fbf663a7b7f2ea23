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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointseg_cli.devices import RESOLVED_DEVICES
from pointseg_cli.errors import ConfigError, ModelError, PointsegError, check_choice
from pointseg_cli.infer.checks import check_batch
from pointseg_cli.infer.outputs import provenance, written_by_pointseg
from pointseg_cli.infer.predictors import Predictor, make_predictor
from pointseg_cli.infer.segment import SegmentOptions, output_paths, segment_file
from pointseg_cli.io.locks import try_lock
from pointseg_cli.io.writers import check_output_dir, prepare_output_dir
from pointseg_cli.model.spec import PRECISION_CHOICES, input_kind
from pointseg_cli.progress import ProgressCallback

log = logging.getLogger(__name__)

#: Outcome of one input.
STATUSES = ("ok", "skipped", "failed")
#: Start of the message of an input whose kind has no default model.
NO_DEFAULT = "pointseg has no default model"
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
    voxel_size : tuple of float, optional
        Override of the stored voxel size in µm: one value, or one per spatial axis (see
        :func:`pointseg_cli.io.voxel.resolve_voxel_size`).
    instances : {"auto", "centers", "distance", "components", "none"}
        Object instances written with the labels (``<stem>.instances.tif``, ``<stem>.objects.csv``);
        ``auto`` (the default here) is ``centers`` for a model with a centre output, else
        ``distance``; ``none`` writes neither file.
    """

    precision: str = "auto"
    overwrite: bool = False
    axes: str | None = None
    voxel_size: tuple[float, ...] | None = None
    instances: str = "auto"

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
        if self.voxel_size is not None:
            from pointseg_cli.io.voxel import resolve_voxel_size

            resolve_voxel_size(None, self.voxel_size, ndim=len(self.voxel_size))  # positive, finite

    def provenance_options(self) -> dict[str, Any]:
        """The settings recorded with every output (see :func:`pointseg_cli.infer.outputs.provenance`)."""
        keys = ("tile", "overlap", "blend", "batch_size", "precision", "axes", "voxel_size", "stain", "probabilities",
                "instances")
        return {k: list(v) if isinstance(v, tuple) else v for k in keys for v in [getattr(self, k)]}


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
        Files written, by kind (``labels``, ``instances``, ``objects``, ``probabilities``, ``preview``).
    model : str
        Name of the model used (empty when none was).
    """

    path: Path
    status: str
    message: str = ""
    shape: tuple[int, ...] | None = None
    seconds: float | None = None
    voxels_per_second: float | None = None
    provider: str = ""
    outputs: dict[str, Path] = field(default_factory=dict)
    model: str = ""

    def __post_init__(self) -> None:
        check_choice("status", self.status, STATUSES)


@dataclass(frozen=True)
class ModelInfo:
    """Which model made an output: its name, the sha256 of its file and where it lies."""

    name: str
    sha256: str | None
    path: Path | None = None


@dataclass(frozen=True)
class SegmentBatchResult:
    """Per-file results of :func:`run_segment`, in input order.

    ``out_dir`` is None when outputs were written beside each input; ``models`` lists the
    models used, in the order they were loaded.
    """

    files: tuple[FileResult, ...]
    out_dir: Path | None
    models: tuple[ModelInfo, ...] = ()

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
    threads : int, optional
        Intra-op CPU threads per ONNX model (see :func:`~pointseg_cli.infer.predictors.make_predictor`).
    """

    def __init__(
        self, model: str | Path | Predictor | None, *, device: str, precision: str = "auto", stain: bool = True,
        threads: int | None = None,
    ) -> None:
        check_choice("device", device, RESOLVED_DEVICES)
        self.model = model
        self.device = device
        self.precision = precision
        self.stain = stain
        self.threads = threads
        self._cache: dict[str, Predictor] = {}
        self._info: dict[str, ModelInfo] = {}
        self._methods: dict[tuple[str, str], str] = {}

    def preload(self) -> None:
        """Load the given model now, so that a bad model, device or precision fails before any work."""
        if self.model is not None:
            self.for_kind("3d")

    def _key(self, kind: str) -> str:
        if isinstance(self.model, Predictor):
            return ""
        return str(self.model) if self.model is not None else kind

    def has_model(self, kind: str) -> bool:
        """Whether inputs of ``kind`` have a model (the given one, or a default for the kind)."""
        from pointseg_cli.zoo import default_model_name

        return self.model is not None or default_model_name(kind) is not None

    def info(self, kind: str) -> ModelInfo:
        """Name and sha256 of the model for inputs of ``kind`` (loads it on first use)."""
        self.for_kind(kind)
        return self._info[self._key(kind)]

    @property
    def models(self) -> tuple[ModelInfo, ...]:
        """The models loaded so far."""
        return tuple(self._info.values())

    def instance_method(self, kind: str, requested: str) -> str:
        """The instance method for inputs of ``kind``, logged once per model in one line.

        See :func:`~pointseg_cli.infer.instance_outputs.resolve_instance_method`.
        """
        from pointseg_cli.infer.instance_outputs import resolve_instance_method

        key = (self._key(kind), requested)
        if key not in self._methods:
            name = self.info(kind).name
            method, why = resolve_instance_method(requested, self.for_kind(kind).metadata, name=f"model {name}")
            if method != "none":
                log.info("instances: method '%s' (%s)", method, why)
            self._methods[key] = method
        return self._methods[key]

    def for_kind(self, kind: str) -> Predictor:
        """The predictor for inputs of ``kind`` (the given model whatever the kind, when there is one)."""
        from pointseg_cli.zoo import resolve_model

        if isinstance(self.model, Predictor):
            if "" not in self._info:
                name = getattr(self.model, "name", None) or type(self.model).__name__
                self._info[""] = ModelInfo(str(name), None)
            return self.model
        key = self._key(kind)
        if key not in self._cache:
            model_path = resolve_model(self.model, kind=kind)
            pred = make_predictor(model_path, device=self.device, precision=self.precision, threads=self.threads)
            self._info[key] = _model_info(self.model, kind, model_path)
            log.info("model %s runs on %s", model_path, pred.provider)
            stain = pred.metadata.normalization.get("stain")
            if stain:
                log.info("stain normalisation to %s (%s) %s", stain.get("target", "the training target"),
                         stain.get("method"), "on" if self.stain else "skipped")
            self._cache[key] = pred
        return self._cache[key]


def _model_info(given: str | Path | None, kind: str, path: Path) -> ModelInfo:
    """Name (registry name, or the file / run folder name) and sha256 of the model file."""
    from pointseg_cli.model.checkpoint import resolve_checkpoint
    from pointseg_cli.zoo import default_model_name, sha256_of

    if given is None:
        name = default_model_name(kind) or path.name
    else:
        text = str(given)
        name = path.name if Path(text).exists() or "/" in text else text
    model_file = resolve_checkpoint(path) if path.is_dir() else path
    return ModelInfo(name, sha256_of(model_file), Path(path))


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
