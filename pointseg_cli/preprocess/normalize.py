"""Intensity normalisation shared by objectness, training and inference.

One :class:`Normalization` is chosen at training time, saved in ``config.json`` and in the ONNX
metadata (``pointseg.normalization``), and applied again by ``segment`` so that inference sees
the same intensity scale without flags.

Method ``percentile`` (default) maps the ``low``-th percentile of each channel to 0 and the
``high``-th percentile to 1 (1 and 99.8 by default, the usual choice for fluorescence, robust
to a few hot pixels), computed per image — on a strided subsample for images above ~4 M
elements — and clips to [0, 1] when ``clip`` is set. ``fixed`` uses ``low``/``high`` as the
intensity values themselves (e.g. 0 and 255); ``none`` only converts to float32.

With ``equalize`` set, each channel is then histogram-equalised (:mod:`pointseg_cli.preprocess.equalize`)
with the map of the whole image, computed with the other statistics on the same subsample, so a
tiled inference equalises every tile alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.preprocess.equalize import EqualizationMap, apply_equalization, equalization_map

NORMALIZATION_METHODS = ("percentile", "fixed", "none")


@dataclass(frozen=True)
class Normalization:
    """How image intensities are scaled before objectness, training and inference."""

    method: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    per_channel: bool = True
    clip: bool = True
    equalize: bool = False

    def __post_init__(self) -> None:
        check_choice("normalization method", self.method, NORMALIZATION_METHODS)
        if not isinstance(self.equalize, bool):
            raise ConfigError(f"normalization 'equalize' must be true or false; got {self.equalize!r}")
        if self.method == "percentile" and not (0.0 <= self.low < self.high <= 100.0):
            raise ConfigError(
                f"percentile normalization needs 0 <= low < high <= 100; got low={self.low}, high={self.high}"
            )
        if self.method == "fixed" and not self.low < self.high:
            raise ConfigError(f"fixed normalization needs low < high; got low={self.low}, high={self.high}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Normalization:
        """Build from a dict (unknown keys, e.g. a ``stain`` entry, are ignored here)."""
        if not data:
            return cls()
        keys = ("method", "low", "high", "per_channel", "clip", "equalize")
        fields = {k: data[k] for k in keys if k in data}
        return cls(**fields)


@dataclass(frozen=True)
class NormStats:
    """Per-channel intensities mapped to 0 (``lo``) and 1 (``hi``); shape ``(C,)``; and, with
    ``Normalization.equalize``, the equalisation map applied after that scaling."""

    lo: np.ndarray
    hi: np.ndarray
    equalization: EqualizationMap | None = None


def _as_channel_last(x: np.ndarray, channel_axis: int | None) -> np.ndarray:
    if channel_axis is None:
        return x[..., None]
    return np.moveaxis(x, channel_axis, -1)


def _sample(image_like: Any, channel_axis: int | None) -> np.ndarray:
    """The pixels the statistics are computed on: ``subsample()`` of a LazyImage, else the array
    (strided to about 4 M elements when larger)."""
    if hasattr(image_like, "subsample"):
        return image_like.subsample()
    data = np.asarray(image_like)
    if data.size > (1 << 22):
        step = int(np.ceil((data.size / (1 << 22)) ** (1.0 / data.ndim)))
        ch = None if channel_axis is None else channel_axis % data.ndim
        index = tuple(slice(None) if ax == ch else slice(None, None, step) for ax in range(data.ndim))
        data = data[index]
    return data


def compute_stats(image_like: Any, norm: Normalization, *, channel_axis: int | None = None) -> NormStats:
    """Intensity statistics of an image for :func:`apply_normalization`.

    Parameters
    ----------
    image_like : numpy array, or a :class:`~pointseg_cli.io.images.LazyImage` (anything with a
        ``subsample()`` method returning canonical channel-last data, in which case
        ``channel_axis`` must be ``-1`` or ``None`` as for the canonical array).
    norm : the normalisation settings.
    channel_axis : axis holding channels, or ``None`` for single-channel data.
    """
    data = None
    if norm.method in ("none", "fixed"):
        # No pixel statistics needed: only the channel count, read from the shape.
        shape = tuple(image_like.shape)
        n_ch = 1 if channel_axis is None else shape[channel_axis]
        if hasattr(image_like, "subsample"):  # LazyImage: canonical, channels last only when > 1
            n_ch = image_like.info.channels
        if norm.method == "none":
            stats = NormStats(lo=np.zeros(n_ch, np.float32), hi=np.ones(n_ch, np.float32))
        else:
            stats = NormStats(lo=np.full(n_ch, norm.low, np.float32), hi=np.full(n_ch, norm.high, np.float32))
    else:
        data = _sample(image_like, channel_axis)
        x = _as_channel_last(data, channel_axis)
        n_ch = x.shape[-1]
        flat = x.reshape(-1, n_ch).astype(np.float32, copy=False)
        if norm.per_channel:
            lo, hi = np.percentile(flat, [norm.low, norm.high], axis=0)
        else:
            lo_s, hi_s = np.percentile(flat, [norm.low, norm.high])
            lo, hi = np.full(n_ch, lo_s), np.full(n_ch, hi_s)
        stats = NormStats(lo=np.asarray(lo, np.float32), hi=np.asarray(hi, np.float32))
    if not norm.equalize:
        return stats
    data = _sample(image_like, channel_axis) if data is None else data
    scaled = apply_normalization(data, stats, channel_axis=channel_axis, clip=norm.clip)
    return NormStats(lo=stats.lo, hi=stats.hi, equalization=equalization_map(scaled, channel_axis=channel_axis))


def apply_normalization(x: np.ndarray, stats: NormStats, *, channel_axis: int | None = None, clip: bool = True):
    """Map ``stats.lo`` → 0 and ``stats.hi`` → 1 per channel; returns float32 of ``x``'s shape.

    A channel with ``hi == lo`` (a constant image) maps to 0 everywhere. With an equalisation map
    in ``stats``, it is applied after the scaling (and clipping).
    """
    x = np.asarray(x, dtype=np.float32)
    lo = stats.lo.astype(np.float32)
    span = stats.hi.astype(np.float32) - lo
    scale = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0).astype(np.float32)
    if channel_axis is None:
        if lo.size != 1:
            raise ConfigError(f"statistics have {lo.size} channels but the image has none (channel_axis=None)")
        out = (x - lo[0]) * scale[0]
    else:
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        out = (x - lo.reshape(shape)) * scale.reshape(shape)
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    if stats.equalization is not None:
        out = apply_equalization(out, stats.equalization, channel_axis=channel_axis)
    return out


def normalize_image(x: np.ndarray, norm: Normalization | None = None, *, channel_axis: int | None = None) -> np.ndarray:
    """Compute statistics on ``x`` and apply them (see the module docstring); float32 output."""
    norm = norm or Normalization()
    stats = compute_stats(x, norm, channel_axis=channel_axis)
    return apply_normalization(x, stats, channel_axis=channel_axis, clip=norm.clip)
