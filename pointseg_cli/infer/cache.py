"""One predictor per model for a batch: :class:`PredictorCache`.

A batch loads each model once, on first use: the model it was given, or the default model of each
input kind. A distributed worker keeps one cache per (model, device, precision, threads).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pointseg_cli.devices import RESOLVED_DEVICES
from pointseg_cli.errors import check_choice
from pointseg_cli.infer.predictors import Predictor, make_predictor
from pointseg_cli.infer.results import ModelInfo

log = logging.getLogger(__name__)


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
        See :class:`~pointseg_cli.infer.config.SegmentConfig`.
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
