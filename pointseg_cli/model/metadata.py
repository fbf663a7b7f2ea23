"""Model metadata: what a model tells the inference loop about itself, stored in ONNX files.

``segment`` needs no flags to reproduce training-time normalisation, classes and tile size: they
travel inside the model as ONNX ``metadata_props`` (keys ``pointseg.classes``, ``pointseg.ndim``,
``pointseg.channels``, ``pointseg.normalization``, ``pointseg.tile``, ``pointseg.divisor``,
``pointseg.version``, ``pointseg.precision``, and ``pointseg.outputs``: the graph's outputs,
``["logits"]`` or ``["logits", "centers"]`` for a model with the centre head; a model without the
key has only ``logits``). A checkpoint's metadata comes from
:func:`metadata_from_loaded`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pointseg_cli import __version__
from pointseg_cli.errors import ModelError
from pointseg_cli.model.spec import PRECISIONS, input_kind
from pointseg_cli.nets.arch import CENTERS, LOGITS

KEYS = ("classes", "ndim", "channels", "normalization", "tile", "divisor", "version")
PREFIX = "pointseg."


@dataclass(frozen=True)
class ModelMetadata:
    """What a segmentation model tells the inference loop about itself.

    Attributes
    ----------
    classes : tuple of str
        Object class names; class id ``i + 1`` is ``classes[i]``, 0 is background.
    ndim : int
        Spatial dimensions, 2 or 3.
    channels : int
        Input channels ``C``.
    normalization : dict
        ``Normalization.to_dict()`` of the training data (plus an optional ``stain`` entry).
    tile : tuple of int
        Spatial training crop; the default inference tile.
    divisor : int
        Spatial sizes must be multiples of it.
    version : str
        pointseg version that exported the model.
    precision : str
        ``fp32`` or ``fp16`` (input/output element type of the ONNX graph).
    outputs : tuple of str
        The model's outputs in graph order: ``("logits",)``, or ``("logits", "centers")`` when it
        also gives the object-centre map ``(N, 1, *spatial)`` in [0, 1].
    """

    classes: tuple[str, ...]
    ndim: int
    channels: int
    normalization: dict[str, Any] = field(default_factory=dict)
    tile: tuple[int, ...] = ()
    divisor: int = 1
    version: str = __version__
    precision: str = "fp32"
    outputs: tuple[str, ...] = (LOGITS,)

    def __post_init__(self) -> None:
        if not self.classes or not all(isinstance(c, str) and c for c in self.classes):
            raise ModelError(f"model metadata needs a non-empty list of class names; got {self.classes!r}")
        if self.ndim not in (2, 3):
            raise ModelError(f"model metadata ndim must be 2 or 3; got {self.ndim}")
        if self.channels < 1:
            raise ModelError(f"model metadata channels must be >= 1; got {self.channels}")
        if len(self.tile) != self.ndim or any(int(t) < 1 for t in self.tile):
            raise ModelError(f"model metadata tile must have {self.ndim} positive sizes; got {self.tile}")
        if self.divisor < 1:
            raise ModelError(f"model metadata divisor must be >= 1; got {self.divisor}")
        if self.precision not in PRECISIONS:
            raise ModelError(f"model precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        outputs = tuple(str(o) for o in self.outputs)
        if outputs not in ((LOGITS,), (LOGITS, CENTERS)):
            raise ModelError(f"model outputs must be [{LOGITS!r}] or [{LOGITS!r}, {CENTERS!r}]; got {list(outputs)}")
        object.__setattr__(self, "outputs", outputs)

    @property
    def has_centers(self) -> bool:
        """Whether the model gives the object-centre map (output ``centers``)."""
        return CENTERS in self.outputs

    @property
    def n_outputs(self) -> int:
        """``K + 1`` output channels (background first)."""
        return len(self.classes) + 1

    @property
    def kind(self) -> str:
        """Registry kind: ``2d-gray``, ``2d-rgb`` or ``3d``."""
        return input_kind(self.ndim, self.channels)

    def to_props(self) -> dict[str, str]:
        """ONNX ``metadata_props`` (string values, JSON where structured)."""
        return {
            PREFIX + "classes": json.dumps(list(self.classes)),
            PREFIX + "ndim": str(self.ndim),
            PREFIX + "channels": str(self.channels),
            PREFIX + "normalization": json.dumps(self.normalization),
            PREFIX + "tile": json.dumps(list(self.tile)),
            PREFIX + "divisor": str(self.divisor),
            PREFIX + "version": self.version,
            PREFIX + "precision": self.precision,
            PREFIX + "outputs": json.dumps(list(self.outputs)),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], *, source: str = "model") -> ModelMetadata:
        """Parse ``metadata_props``; :class:`ModelError` naming the missing or bad key."""
        missing = [PREFIX + k for k in KEYS if PREFIX + k not in props]
        if missing:
            raise ModelError(
                f"{source} lacks pointseg metadata {', '.join(missing)} (was it made by 'pointseg export'?)"
            )
        try:
            classes = json.loads(props[PREFIX + "classes"])
            if not isinstance(classes, list):
                raise TypeError(f"{PREFIX}classes must be a JSON list of names; got {props[PREFIX + 'classes']!r}")
            return cls(
                classes=tuple(classes),
                ndim=int(props[PREFIX + "ndim"]),
                channels=int(props[PREFIX + "channels"]),
                normalization=dict(json.loads(props[PREFIX + "normalization"])),
                tile=tuple(int(t) for t in json.loads(props[PREFIX + "tile"])),
                divisor=int(props[PREFIX + "divisor"]),
                version=props[PREFIX + "version"],
                precision=props.get(PREFIX + "precision", "fp32"),
                outputs=tuple(json.loads(props.get(PREFIX + "outputs", json.dumps([LOGITS])))),
            )
        except (ValueError, TypeError) as exc:
            raise ModelError(f"{source} has malformed pointseg metadata: {exc}") from exc


def read_model_metadata(path: str | Path) -> ModelMetadata:
    """Read the ``pointseg.*`` metadata of an ONNX model without loading its weights."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - onnx raises DecodeError and others for corrupt files
        raise ModelError(f"{path.name} is not a readable ONNX model: {exc}") from exc
    props = {p.key: p.value for p in model.metadata_props}
    meta = ModelMetadata.from_props(props, source=path.name)
    check_graph(model.graph, meta, source=path.name)
    return meta


#: ONNX tensor element types of the two precisions.
_ELEM_TYPES = {1: "fp32", 10: "fp16"}


def _dims(value: Any) -> list[int | None] | None:
    """Static sizes (None where symbolic) of a graph input/output, or None when its shape is not declared."""
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]


def check_graph(graph: Any, meta: ModelMetadata, *, source: str = "model") -> None:
    """Check that an ONNX graph's first input and output agree with its pointseg metadata.

    Input ``(N, C, *spatial)`` and output ``(N, K+1, *spatial)``: the rank must be ``ndim + 2``;
    ``C`` and ``K+1``, where the graph fixes them, must equal the metadata's channels and number
    of classes plus background; the element type must match the precision.

    Raises
    ------
    ModelError
        ``"model <source> is inconsistent: ..."`` naming what the metadata and the graph say.
    """
    weights = {init.name for init in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    outputs = list(graph.output)
    if not inputs or not outputs:
        raise ModelError(f"model {source} is inconsistent: its graph has no input or no output")
    rank = meta.ndim + 2
    problems = []
    for value, what, size, expected in (
        (inputs[0], "input", meta.channels, "channels"),
        (outputs[0], "output", meta.n_outputs, "classes + background"),
    ):
        dims = _dims(value)
        elem = _ELEM_TYPES.get(value.type.tensor_type.elem_type)
        if elem is not None and elem != meta.precision:
            problems.append(f"its metadata says {meta.precision} but {what} '{value.name}' is {elem}")
        if dims is None:
            continue
        shown = "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"
        if len(dims) != rank:
            problems.append(
                f"its metadata says {meta.ndim}-D (rank {rank}) but {what} '{value.name}' has rank {len(dims)} {shown}"
            )
        elif dims[1] is not None and dims[1] != size:
            problems.append(f"its metadata says {size} {expected} but {what} '{value.name}' has {dims[1]} {shown}")
    if problems:
        raise ModelError(f"model {source} is inconsistent: {'; '.join(problems)}")


def metadata_from_loaded(loaded: Any, *, precision: str = "fp32") -> ModelMetadata:
    """Metadata of a :class:`~pointseg_cli.model.checkpoint.LoadedModel` (or anything with its fields)."""
    return ModelMetadata(
        classes=tuple(loaded.classes),
        ndim=int(loaded.ndim),
        channels=int(loaded.channels),
        normalization=dict(loaded.normalization),
        tile=tuple(int(t) for t in loaded.tile),
        divisor=int(loaded.divisor),
        precision=precision,
        outputs=tuple(getattr(loaded.model, "output_names", (LOGITS,))),
    )
