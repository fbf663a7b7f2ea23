"""What a network is: the settings that build it, input kinds and precisions (torch-free).

:class:`NetConfig` holds the fields of a training config that decide the network's shape; a
training run's ``config.json`` (or a ``TrainConfig``) has them all, and :meth:`NetConfig.from_mapping`
picks them out, so that loading a checkpoint needs nothing from the training package.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.nets.arch import ARCH_DIVISOR, ARCH_NDIM, ARCHS, CENTERS, ENCODERS, LOGITS

#: Input kinds, each with its own default model: 2-D single channel, 2-D RGB, 3-D.
KINDS = ("2d-gray", "2d-rgb", "3d")
#: Numeric precisions of a model (an ONNX graph's input/output type, or autocast for PyTorch).
PRECISIONS = ("fp32", "fp16")
#: ``--precision`` values: ``auto`` is fp16 for PyTorch on CUDA, the exported precision for ONNX.
PRECISION_CHOICES = ("auto", *PRECISIONS)


def input_kind(ndim: int, channels: int) -> str:
    """The kind (:data:`KINDS`) of an image or model with ``ndim`` spatial axes and ``channels``."""
    if ndim == 3:
        return "3d"
    return "2d-gray" if channels == 1 else "2d-rgb"


@dataclass(frozen=True)
class NetConfig:
    """The settings that build a segmentation network.

    Attributes
    ----------
    arch : {"fpn", "unet3d"}
        2-D FPN on a ResNet encoder, or 3-D U-Net.
    encoder : {"resnet18", "resnet34", "resnet50"}
        FPN encoder (ignored by the U-Net).
    base_filters : int
        FPN stem width / U-Net filters at the first level.
    filter_growth : {1, 2}
        U-Net filter factor per level (ignored by the FPN).
    channels : int
        Image channels ``C``.
    classes : tuple of str
        Object class names; the network outputs ``len(classes) + 1`` channels (background first).
    center_head : bool
        Whether the network also outputs the object-centre map (``centers``). A training config
        has it when ``"center"`` is among its losses; configs saved before the head existed do
        not, so their networks are built (and their checkpoints load) without it.
    """

    arch: str = "fpn"
    encoder: str = "resnet50"
    base_filters: int = 64
    filter_growth: int = 1
    channels: int = 1
    classes: tuple[str, ...] = ("object",)
    center_head: bool = False

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        check_choice("encoder", self.encoder, ENCODERS)
        for name in ("base_filters", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a positive integer; got {value!r}")
        if self.filter_growth not in (1, 2):
            raise ConfigError(f"filter_growth must be 1 or 2; got {self.filter_growth!r}")
        classes = tuple(str(c) for c in self.classes)
        if not classes or len(set(classes)) != len(classes) or any(not c for c in classes):
            raise ConfigError(f"classes must be a non-empty list of distinct names; got {list(classes)}")
        object.__setattr__(self, "classes", classes)

    @property
    def ndim(self) -> int:
        """Spatial dimensionality of the architecture (2 or 3)."""
        return ARCH_NDIM[self.arch]

    @property
    def divisor(self) -> int:
        """Spatial sizes fed to the network must be multiples of this."""
        return ARCH_DIVISOR[self.arch]

    @property
    def output_names(self) -> tuple[str, ...]:
        """The network's outputs: ``("logits",)`` or ``("logits", "centers")``."""
        return (LOGITS, CENTERS) if self.center_head else (LOGITS,)

    @property
    def n_outputs(self) -> int:
        """Output channels ``K + 1`` (background first)."""
        return len(self.classes) + 1

    @classmethod
    def from_mapping(cls, source: Mapping[str, Any] | Any) -> NetConfig:
        """The network fields of a dict (a run's ``config.json``) or of an object with those attributes.

        Other keys or attributes are ignored; missing ones take the defaults above.
        """
        names = [f.name for f in fields(cls)]
        if isinstance(source, Mapping):
            found = {n: source[n] for n in names if n in source}
        else:
            found = {n: getattr(source, n) for n in names if hasattr(source, n)}
        check_types(found, cls, what="network config")
        if isinstance(found.get("classes"), list):
            found["classes"] = tuple(found["classes"])
        if "center_head" not in found:  # a training config: the head comes with the center loss
            losses = source.get("losses") if isinstance(source, Mapping) else getattr(source, "losses", None)
            found["center_head"] = "center" in tuple(losses or ())
        found["center_head"] = bool(found["center_head"])
        return cls(**found)


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _describe(a) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
        return f"a list of {len(args)} {_describe(args[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict or tp is dict:
        return "an object ({...})"
    return {int: "an integer", float: "a number", str: "a text", bool: "true or false"}.get(tp, str(tp))


def _matches(value: Any, tp: Any) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args, strict=True))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def check_types(data: Mapping[str, Any], cls: type, *, what: str) -> None:
    """Check the JSON value of every known field of dataclass ``cls`` in ``data`` against its annotation.

    Catches hand-edited files (``"epochs": "10"``, ``"classes": "nucleus"``) with a message that
    names the key, before a value of the wrong type is used or silently converted.

    Raises
    ------
    ConfigError
        ``"<what>: 'key' must be an integer; got '10'"``.
    """
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        tp = hints.get(key)
        if tp is not None and not _matches(value, tp):
            raise ConfigError(f"{what}: {key!r} must be {_describe(tp)}; got {value!r}")
