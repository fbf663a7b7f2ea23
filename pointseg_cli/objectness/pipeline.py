"""Objectness for one image from its points: preprocess, normalise, grow (used by the CLI and training)."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, ImageFormatError, check_choice
from pointseg_cli.io.points import PointTable
from pointseg_cli.objectness.grow import COSTS, MODES, ObjectnessResult, compute_objectness
from pointseg_cli.preprocess.diffusion import anisotropic_diffusion
from pointseg_cli.preprocess.equalize import equalize
from pointseg_cli.preprocess.normalize import Normalization, normalize_image
from pointseg_cli.preprocess.stain import STAIN_METHODS, stain_normalize

log = logging.getLogger(__name__)

#: Default objectness decay for intensities normalised to [0, 1] (1st..99.8th percentile).
#: Chosen with ``pointseg objectness --tune`` on BBBC007 (see docs/objectness.md).
DEFAULT_W = 2.0


@dataclass(frozen=True)
class ObjectnessConfig:
    """Settings of the objectness pipeline; saved as JSON beside its outputs.

    Attributes
    ----------
    w : float
        Objectness decay in ``exp(-w * d)``, > 0; ``d`` is in squared normalised intensity units.
    mode : {"paper", "geodesic"}
    cost : {"seed", "parent"}
        Step cost of the growing (see :mod:`pointseg_cli.objectness.grow`); ``"parent"`` is issue
        3's formula. :meth:`from_dict` reads a dict without this key (written before the option
        existed) as ``"parent"``.
    connectivity : int
        1 (face neighbours) up to the number of spatial dimensions (full neighbourhood).
    spacing : tuple of float, optional
        Physical voxel size per spatial axis (see :mod:`pointseg_cli.objectness.grow`).
    voxel_spacing : bool
        When ``spacing`` is None, callers that read image files (``run_objectness``) grow each
        image with the voxel size recorded in it, if any (:func:`spacing_for`).
    normalization : Normalization
        Per-image intensity scaling to [0, 1] applied before the distances (percentiles by default).
    stain_method : {"vahadane", "macenko"}, optional
        Stain normalisation of RGB H&E images; needs a target image at run time.
    stain_target : str, optional
        Where the target image came from (recorded for provenance only).
    diffusion_iterations : int
        Perona–Malik iterations after normalisation (0 = off).
    diffusion_kappa : float
        Perona–Malik edge threshold in normalised intensity units.
    equalize : bool
        Histogram-equalise (scikit-image) after normalisation.
    """

    w: float = DEFAULT_W
    mode: str = "paper"
    cost: str = "seed"
    connectivity: int = 1
    spacing: tuple[float, ...] | None = None
    voxel_spacing: bool = True
    normalization: Normalization = field(default_factory=Normalization)
    stain_method: str | None = None
    stain_target: str | None = None
    diffusion_iterations: int = 0
    diffusion_kappa: float = 0.1
    equalize: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.w) and self.w > 0):
            raise ConfigError(f"w must be a positive finite number; got {self.w}")
        check_choice("mode", self.mode, MODES)
        check_choice("cost", self.cost, COSTS)
        if self.connectivity not in (1, 2, 3):
            raise ConfigError(f"connectivity must be 1, 2 or 3; got {self.connectivity}")
        if self.stain_method is not None:
            check_choice("stain method", self.stain_method, STAIN_METHODS)
        if self.diffusion_iterations < 0:
            raise ConfigError(f"diffusion iterations must be >= 0; got {self.diffusion_iterations}")
        if not (np.isfinite(self.diffusion_kappa) and self.diffusion_kappa > 0):
            raise ConfigError(f"diffusion kappa must be a positive finite number; got {self.diffusion_kappa}")
        if self.spacing is not None:
            object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
            if len(self.spacing) not in (2, 3) or not all(np.isfinite(s) and s > 0 for s in self.spacing):
                raise ConfigError(f"spacing must be 2 or 3 positive finite numbers; got {self.spacing}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (normalisation nested as its own dict)."""
        out = asdict(self)
        out["normalization"] = self.normalization.to_dict()
        out["spacing"] = list(self.spacing) if self.spacing is not None else None
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectnessConfig:
        """Inverse of :meth:`to_dict`; unknown keys are ignored."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in data.items() if k in known}
        kw["normalization"] = Normalization.from_dict(data.get("normalization"))
        kw.setdefault("cost", "parent")  # recorded before the option existed: the parent cost
        if kw.get("spacing") is not None:
            kw["spacing"] = tuple(kw["spacing"])
        return cls(**kw)


def spacing_for(config: ObjectnessConfig, voxel_size: tuple[float, ...] | None) -> ObjectnessConfig:
    """``config`` with the image's recorded ``voxel_size`` as spacing, unless ``config.spacing``
    is set or ``config.voxel_spacing`` is off."""
    if config.spacing is not None or not config.voxel_spacing or voxel_size is None:
        return config
    return replace(config, spacing=tuple(float(v) for v in voxel_size))


def prepare_image(
    image: np.ndarray,
    config: ObjectnessConfig,
    *,
    channel_axis: int | None = None,
    stain_target: np.ndarray | None = None,
) -> np.ndarray:
    """Apply the configured preprocessing; returns float32 intensities in [0, 1], shape of ``image``.

    Order: stain normalisation (RGB, on 8-bit values) → percentile normalisation → histogram
    equalisation → anisotropic diffusion.
    """
    x = np.asarray(image)
    if config.stain_method is not None:
        if stain_target is None:
            raise ConfigError(f"stain method {config.stain_method!r} needs a target image; none was given")
        if channel_axis is None or x.shape[channel_axis] != 3:
            raise ImageFormatError(f"stain normalisation needs an RGB image (3 channels); got shape {x.shape}")
        x = np.moveaxis(
            stain_normalize(np.moveaxis(x, channel_axis, -1), stain_target, method=config.stain_method),
            -1,
            channel_axis,
        )
    x = normalize_image(x, config.normalization, channel_axis=channel_axis)
    if config.equalize:
        x = equalize(x, channel_axis=channel_axis)
    if config.diffusion_iterations:
        x = anisotropic_diffusion(
            x, iterations=config.diffusion_iterations, kappa=config.diffusion_kappa, channel_axis=channel_axis
        )
    return x


def objectness_for_image(
    image: np.ndarray,
    points: PointTable,
    *,
    config: ObjectnessConfig,
    channel_axis: int | None = None,
    stain_target: np.ndarray | None = None,
) -> ObjectnessResult:
    """Objectness of one image from its points.

    Parameters
    ----------
    image : np.ndarray
        Canonical image ``(Y, X[, C])`` or ``(Z, Y, X[, C])`` as read by ``io.images.read_image``.
    points : PointTable
        The points of this image (``table.for_image(stem)``); class ids follow its ``class_names``.
    config : ObjectnessConfig
    channel_axis : int, optional
        ``-1`` when ``image`` has a channel axis (canonical images keep channels last).
    stain_target : np.ndarray, optional
        RGB target image, required when ``config.stain_method`` is set.

    Returns
    -------
    ObjectnessResult
    """
    x = prepare_image(image, config, channel_axis=channel_axis, stain_target=stain_target)
    return grow_prepared(x, points, config=config, channel_axis=channel_axis)


def grow_prepared(
    x: np.ndarray, points: PointTable, *, config: ObjectnessConfig, channel_axis: int | None = None
) -> ObjectnessResult:
    """Region growing on an image already through :func:`prepare_image` (the second half of
    :func:`objectness_for_image`, for callers that also need the prepared intensities)."""
    ndim = np.ndim(x) - (channel_axis is not None)
    seeds = points.pixel_coords(ndim)
    log.debug("objectness: %d seeds on %s image, config %s", len(points), x.shape, config)
    return compute_objectness(
        x,
        seeds,
        points.class_ids(),
        w=config.w,
        channel_axis=channel_axis,
        connectivity=config.connectivity,
        mode=config.mode,
        spacing=config.spacing,
        cost=config.cost,
    )
