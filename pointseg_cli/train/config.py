"""`TrainConfig`: every setting of a training run, validated, saved as ``config.json`` in the run dir.

β defaults (``beta_bg=1.0``, ``beta_obj=0.5``): the issue requires β_background > β_object so
that the spread-out objectness does not pull the surroundings of objects into the object class.
The 2:1 ratio is a prior, NOT tuned: no β sweep on validation data has been run yet (see
docs/training.md, "Open points"). Treat it as a starting point.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pointseg_cli.devices import DEVICE_CHOICES
from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.model.spec import check_types
from pointseg_cli.nets.arch import ARCH_DIVISOR as _DIVISOR
from pointseg_cli.nets.arch import ARCH_NDIM as _NDIM
from pointseg_cli.nets.arch import ARCHS, ENCODERS
from pointseg_cli.objectness.grow import COSTS as OBJECTNESS_COSTS
from pointseg_cli.objectness.pipeline import DEFAULT_W
from pointseg_cli.preprocess.normalize import Normalization
from pointseg_cli.preprocess.stain import check_reference

LOSS_TERMS = ("pce", "img", "obj", "center")
#: Centre-map targets: "adaptive" (Gaussian shaped by each object's estimated extent) or "fixed" (one σ).
CENTER_TARGETS = ("adaptive", "fixed")
#: How L_img is weighted against L_point (see :class:`pointseg_cli.train.losses.PointSupervisionLoss`).
IMG_SCALES = ("crop", "point")
OBJECTNESS_KINDS = ("paper", "gauss", "dir")
OBJECTNESS_MODES = ("paper", "geodesic")
SUPERVISION = ("points", "masks")
#: The network trained on images of each spatial dimensionality unless ``arch`` is given.
DIMENSION_ARCH = {ndim: arch for arch, ndim in _NDIM.items()}

#: Paper defaults per spatial dimensionality: crop (spatial) and batch size.
DEFAULT_CROP = {2: (128, 128), 3: (32, 64, 64)}
DEFAULT_BATCH = {2: 64, 3: 20}
#: Boundary-background weight α per spatial dimensionality: the paper's 0.1 in 2D; none in 3D, where
#: region-boundary surfaces outnumber the clicks and a quarter of them lie inside touching nuclei
#: (docs/results.md: with 0.02 validation IoU fell from 0.73 to 0.57 over 300 steps, with 0 it rose).
DEFAULT_BG_WEIGHT = {2: 0.1, 3: 0.0}
# 3D runs without the objectness loss and without masks: the boundary background is their only
# background label, so it cannot default to 0 there
POINTS_ONLY_BG_WEIGHT_3D = 0.02
#: CPU-sized settings that a run on the CPU takes for every one of them the user did not set: the
#: paper's ResNet-50 with 64 crops per step would take about a day on a CPU, these a few minutes
#: to an hour (docs/training.md, "Training on a CPU").
CPU_DEFAULTS: dict[int, dict[str, Any]] = {
    2: {"encoder": "resnet18", "base_filters": 32, "batch_size": 8, "crop": (128, 128)},
    3: {"base_filters": 16, "batch_size": 2, "crop": (32, 64, 64)},
}


def default_normalization() -> dict[str, Any]:
    """The training default: percentiles 1 and 99.8 per channel (a fresh dict)."""
    return {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True}


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (see ``pointseg train --help`` for each option).

    ``crop`` and ``batch_size`` left as ``None`` take the paper's defaults for ``ndim``
    (2D 128×128 / 64, 3D 32×64×64 / 20); ``bg_weight`` left as ``None`` is 0.1 in 2D and 0 in 3D
    (0.02 in 3D when neither the objectness loss nor masks give a background label).
    ``img_scale`` left as ``None`` is ``crop`` with one class and ``point`` with several (see
    :func:`default_img_scale`).
    ``lambdas`` are (λ_point, λ_obj, λ_img); ``center_weight`` is λ_center of the centre-map loss,
    which (with the network's centre head) exists when ``"center"`` is in ``losses`` — configs
    saved before it existed list no ``center`` and keep a network without the head.
    ``normalization`` is ``Normalization.to_dict()`` plus, for H&E training, an optional
    ``"stain"`` entry (:func:`pointseg_cli.preprocess.stain.stain_reference` of the target image): every
    image is then stain-normalised to it before intensity normalisation (2-D RGB only); with
    ``"equalize": True`` every image is histogram-equalised after it (network and objectness), and
    ``segment`` does the same from the model's metadata.
    ``diffusion_iterations`` / ``diffusion_kappa``: Perona–Malik smoothing of the image the objectness
    is grown on (the network still sees the undiffused image). ``voxel_spacing``: grow with the
    voxel size recorded in each image file, if any (steps along a coarse axis cost more).
    """

    arch: str = "fpn"
    encoder: str = "resnet50"
    base_filters: int = 64
    filter_growth: int = 1
    ndim: int = 2
    channels: int = 1
    classes: tuple[str, ...] = ("object",)
    crop: tuple[int, ...] | None = None
    batch_size: int | None = None
    lr: float = 1e-3
    epochs: int = 50
    steps_per_epoch: int = 50
    max_steps: int | None = None
    losses: tuple[str, ...] = ("pce", "img", "obj", "center")
    lambdas: tuple[float, float, float] = (1.0, 1.0, 1.0)
    center_weight: float = 1.0
    center_target: str = "adaptive"
    center_sigma: float = 2.0  # "fixed": σ in pixels; "adaptive": the fallback for objects with no usable extent
    center_scale: float = 1.0  # "adaptive": σ = center_scale × the object's standard deviation per direction
    bg_weight: float | None = None
    point_radius: int = 0
    img_margin: int = 0
    img_scale: str | None = None
    beta_bg: float = 1.0
    beta_obj: float = 0.5
    objectness: str = "paper"
    objectness_dir: str | None = None
    w: float = DEFAULT_W  # objectness decay; the objectness engine's default (tuned there on BBBC007)
    objectness_mode: str = "paper"
    objectness_cost: str = "seed"
    connectivity: int = 1
    gauss_sigma: float = 5.0
    diffusion_iterations: int = 0  # Perona-Malik iterations before the objectness (0 = off)
    diffusion_kappa: float = 0.1
    voxel_spacing: bool = True  # grow the objectness with the images' voxel size when they record one
    supervision: str = "points"
    masks_dir: str | None = None
    val_masks_dir: str | None = None
    normalization: dict[str, Any] = field(default_factory=default_normalization)
    axes: str | None = None
    seed: int = 0
    val_fraction: float = 0.2
    val_images: tuple[str, ...] = ()
    device: str = "auto"
    amp: bool = True
    augment: bool = True
    lr_patience: int = 5
    lr_factor: float = 0.5
    prefetch: int = 4

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_choice("arch", self.arch, ARCHS)
        check_choice("encoder", self.encoder, ENCODERS)
        check_choice("objectness", self.objectness, OBJECTNESS_KINDS)
        check_choice("objectness mode", self.objectness_mode, OBJECTNESS_MODES)
        check_choice("objectness cost", self.objectness_cost, OBJECTNESS_COSTS)
        check_choice("supervision", self.supervision, SUPERVISION)
        check_choice("device", self.device, DEVICE_CHOICES)
        check_choice("center target", self.center_target, CENTER_TARGETS)
        if self.ndim != _NDIM[self.arch]:
            raise ConfigError(
                f"arch {self.arch!r} trains on {_NDIM[self.arch]}-D images; the images are {self.ndim}-D"
            )
        _positive_int("base_filters", self.base_filters)
        if self.filter_growth not in (1, 2):
            raise ConfigError(f"filter_growth must be 1 or 2; got {self.filter_growth}")
        _positive_int("channels", self.channels)
        classes = tuple(str(c) for c in self.classes)
        if not classes or len(set(classes)) != len(classes) or any(not c for c in classes):
            raise ConfigError(f"classes must be a non-empty list of distinct names; got {list(classes)}")
        set_(self, "classes", classes)
        crop = DEFAULT_CROP[self.ndim] if self.crop is None else tuple(int(c) for c in self.crop)
        div = _DIVISOR[self.arch]
        if len(crop) != self.ndim or any(c < div or c % div for c in crop):
            raise ConfigError(
                f"crop must have {self.ndim} sizes, each a positive multiple of {div} for {self.arch}; "
                f"got {list(crop)}"
            )
        set_(self, "crop", crop)
        set_(self, "batch_size", DEFAULT_BATCH[self.ndim] if self.batch_size is None else int(self.batch_size))
        _positive_int("batch_size", self.batch_size)
        _positive_int("epochs", self.epochs)
        _positive_int("steps_per_epoch", self.steps_per_epoch)
        if self.max_steps is not None:
            _positive_int("max_steps", self.max_steps)
        _positive_float("lr", self.lr)
        losses = tuple(str(t).strip() for t in self.losses)
        if "pce" not in losses or any(t not in LOSS_TERMS for t in losses) or len(set(losses)) != len(losses):
            raise ConfigError(
                "losses must be pce optionally with img, obj and/or center (e.g. pce | pce,obj | "
                f"pce,img,obj | pce,img,obj,center); got {','.join(losses)}"
            )
        set_(self, "losses", tuple(t for t in LOSS_TERMS if t in losses))
        lambdas = tuple(float(v) for v in self.lambdas)
        if len(lambdas) != 3 or any(not math.isfinite(v) or v < 0 for v in lambdas):
            raise ConfigError(f"lambdas must be three non-negative numbers (point, obj, img); got {list(lambdas)}")
        set_(self, "lambdas", lambdas)
        if self.bg_weight is None:
            points_only = self.ndim == 3 and "obj" not in self.losses and self.supervision != "masks"
            set_(self, "bg_weight", POINTS_ONLY_BG_WEIGHT_3D if points_only else DEFAULT_BG_WEIGHT[self.ndim])
        if not (math.isfinite(self.bg_weight) and self.bg_weight >= 0):
            raise ConfigError(f"bg_weight must be >= 0; got {self.bg_weight}")
        if self.point_radius < 0:
            raise ConfigError(f"point_radius must be >= 0; got {self.point_radius}")
        if self.img_scale is None:
            set_(self, "img_scale", default_img_scale(len(self.classes)))
        check_choice("img_scale", self.img_scale, IMG_SCALES)
        if not isinstance(self.img_margin, int) or self.img_margin < 0:
            raise ConfigError(f"img_margin must be an integer >= 0 (pixels); got {self.img_margin!r}")
        _positive_float("beta_bg", self.beta_bg)
        _positive_float("beta_obj", self.beta_obj)
        _positive_float("w", self.w)
        _positive_float("gauss_sigma", self.gauss_sigma)
        if not (isinstance(self.center_weight, (int, float)) and math.isfinite(self.center_weight)) or (
            self.center_weight < 0
        ):
            raise ConfigError(f"center_weight must be a number >= 0; got {self.center_weight!r}")
        _positive_float("center_sigma", self.center_sigma)
        _positive_float("center_scale", self.center_scale)
        if not isinstance(self.diffusion_iterations, int) or self.diffusion_iterations < 0:
            raise ConfigError(f"diffusion_iterations must be an integer >= 0; got {self.diffusion_iterations!r}")
        _positive_float("diffusion_kappa", self.diffusion_kappa)
        if self.objectness == "dir" and not self.objectness_dir:
            raise ConfigError("objectness 'dir' needs objectness_dir (a folder of <stem>.objectness.tif)")
        if self.supervision == "masks" and not self.masks_dir:
            raise ConfigError("supervision 'masks' needs masks_dir")
        if self.connectivity < 1 or self.connectivity > self.ndim:
            raise ConfigError(f"connectivity must be 1..{self.ndim}; got {self.connectivity}")
        if not (0.0 <= self.val_fraction < 1.0):
            raise ConfigError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        set_(self, "val_images", tuple(str(s) for s in self.val_images))
        if not isinstance(self.lr_patience, int) or self.lr_patience < 0:
            raise ConfigError(f"lr_patience must be an integer >= 0; got {self.lr_patience!r}")
        if not (0.0 < self.lr_factor < 1.0):
            raise ConfigError(f"lr_factor must be in (0, 1); got {self.lr_factor}")
        _positive_int("prefetch", self.prefetch)
        if not isinstance(self.normalization, dict) or "method" not in self.normalization:
            raise ConfigError(f"normalization must be a dict with a 'method'; got {self.normalization!r}")
        Normalization.from_dict(self.normalization)  # validates method, percentiles and 'equalize'
        if self.normalization.get("stain") is not None:
            set_(self, "normalization", {**self.normalization, "stain": check_reference(self.normalization["stain"])})
            if self.ndim != 2 or self.channels != 3:
                raise ConfigError(
                    "stain normalisation (--stain-normalize) needs 2-D RGB training images (3 channels); "
                    f"the images are {self.ndim}-D with {self.channels} channel(s)"
                )

    @property
    def divisor(self) -> int:
        """Spatial sizes given to the network must be multiples of this."""
        return _DIVISOR[self.arch]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown training config keys {unknown}; expected a subset of {sorted(names)}")
        check_types(data, cls, what="training config")
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        kw.setdefault("objectness_cost", "parent")  # runs saved before the option existed used the parent cost
        kw.setdefault("img_scale", "crop")  # and before --img-scale existed, L_img was weighted per crop
        return cls(**kw)

    def to_json(self, path: str | Path) -> Path:
        """Write ``config.json`` atomically."""
        from pointseg_cli.io.images import atomic_output

        path = Path(path)
        with atomic_output(path) as tmp:
            Path(tmp).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        """Read a ``config.json`` written by :meth:`to_json`."""
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read training config {path}: expected JSON, got {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"training config {path} must hold a JSON object; got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"training config {path}: {str(exc).removeprefix('training config: ')}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d.update(changes)
        return TrainConfig(**d)


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer; got {value!r}")


def _positive_float(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive number; got {value!r}")


def default_img_scale(n_classes: int) -> str:
    """How L_img is weighted by default: ``crop`` for one object class, ``point`` for several.

    With one class every crop holds a click, L_img has only its "present" half, and at the crop
    weight it lifts points-only training (synthetic 3D nuclei: pCE 0.38 -> pCE+Img 0.52 IoU). With
    several classes the crop weight, about 190 times the balance of the formulation L_img comes
    from, flattened whole classes: synthetic H&E, 3 seeds, the full objective gave mIoU 0.34 with
    ``crop`` against 0.59 at the original balance (250 steps), and 0.56 against 0.66 with ``point``
    (1000 steps; docs/results.md).
    """
    return "crop" if n_classes <= 1 else "point"


def check_background_label(config: TrainConfig) -> None:
    """Refuse a new run in which no pixel is ever labelled background.

    Without the objectness loss and without masks, the boundary background (``bg_weight``) is the
    only background label; at weight 0 nothing stops the network from calling every pixel an
    object, and the result looks like a segmentation. Saved configurations are not checked, so
    existing runs still resume and export.
    """
    if config.bg_weight == 0 and "obj" not in config.losses and config.supervision != "masks":
        raise ConfigError(
            f"losses {','.join(config.losses)} with bg_weight 0 label no pixel as background "
            "(the network can learn to call everything an object); expected bg_weight > 0 "
            f"(e.g. {POINTS_ONLY_BG_WEIGHT_3D}) or the obj loss"
        )
