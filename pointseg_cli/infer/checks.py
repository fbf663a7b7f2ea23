"""Usage errors of a ``segment`` batch, found from the inputs' headers before any file is segmented.

:func:`check_batch` is what :func:`~pointseg_cli.infer.batch.run_segment` calls after it has
listed the inputs and loaded the given model: a ``--tile`` or ``--axes`` that does not fit the
model or an input, ``--instances centers`` with a model that has no centre output, or an
output name held by a folder stops the whole batch (exit code 2) instead of failing every file one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointseg_cli.errors import ConfigError, ImageFormatError, PointsegError
from pointseg_cli.infer.options import output_paths
from pointseg_cli.io.writers import check_output_path
from pointseg_cli.model.spec import input_kind

if TYPE_CHECKING:
    from pointseg_cli.infer.cache import PredictorCache
    from pointseg_cli.infer.config import SegmentConfig


def _model_ndim(pred: Any) -> int:
    return int(pred.metadata.ndim)


def check_batch(
    paths: Sequence[Path], config: SegmentConfig, *, out_dir: str | Path | None, predictors: PredictorCache
) -> None:
    """Usage errors of a batch, found before any file is segmented.

    Reads every input's header (a file that cannot be read is left to :func:`segment_one`, which
    reports it as failed) and checks, per input: that ``config.axes`` fits it, that the model for
    its kind loads (an input whose kind has no model is left to :func:`segment_one`), that
    ``config.tile`` has as many sizes as that model has spatial axes, that with ``config.axes`` the
    input then fits the given model, that the model has a centre output when ``config.instances``
    is ``centers``, and that no output name is taken by a folder (or a ``.zarr``
    output's name by a file).

    Raises
    ------
    ConfigError
        ``tile`` or ``axes`` do not fit a model or an input; ``instances`` is ``centers`` and a
        model has no centre output.
    OutputError
        An output name is held by something of the other kind.
    ModelError
        A model that cannot be loaded.
    """
    from pointseg_cli.io.images import read_info

    tile = tuple(config.tile) if config.tile is not None else None
    if predictors.model is not None and getattr(config, "instances", "none") != "none":
        predictors.instance_method("3d", config.instances)  # the given model serves every kind
    if tile is not None and predictors.model is not None:
        ndim = _model_ndim(predictors.for_kind("3d"))  # the given model serves every kind
        if len(tile) != ndim:
            raise ConfigError(
                f"--tile {','.join(map(str, tile))} has {len(tile)} sizes but the model is {ndim}-D "
                f"(expected {ndim} sizes)"
            )
    for path in paths:
        try:
            info = read_info(path, axes=config.axes)
        except PointsegError as exc:
            if config.axes is not None and isinstance(exc, ImageFormatError):
                try:
                    read_info(path)
                except PointsegError:
                    continue  # the file itself is bad: segment_one reports it
                raise ConfigError(str(exc) if "--axes" in str(exc) else f"--axes {config.axes}: {exc}") from None
            continue
        kind = input_kind(info.ndim, info.channels)
        if not predictors.has_model(kind):
            continue  # no default model for this kind: segment_one fails this input alone
        pred = predictors.for_kind(kind)
        if getattr(config, "instances", "none") != "none":
            predictors.instance_method(kind, config.instances)
        ndim = _model_ndim(pred)
        if tile is not None and len(tile) != ndim:
            raise ConfigError(
                f"--tile {','.join(map(str, tile))} has {len(tile)} sizes but the model for '{path.name}' "
                f"is {ndim}-D (expected {ndim} sizes)"
            )
        meta = pred.metadata
        if config.axes is not None and predictors.model is not None and (
            (info.ndim, info.channels) != (meta.ndim, meta.channels)
        ):
            raise ConfigError(
                f"--axes {config.axes} reads '{path.name}' as {info.ndim}-D {info.axes} with {info.channels} "
                f"channel(s), but the model expects {meta.ndim}-D images with {meta.channels} channel(s)"
            )
        folder = Path(out_dir) if out_dir is not None else path.parent
        for key, target in output_paths(folder, info.stem, config).items():
            check_output_path(target, folder=key == "probabilities" and config.probabilities == "zarr")
