"""Histogram equalisation, e.g. for SIM volumes (the paper equalises its SIM data for training).

Equalisation maps each intensity to the share of the image's pixels at or below it (the
cumulative histogram), so a channel's intensities spread evenly over [0, 1]. It is split in two
steps so that a tiled, streamed inference applies exactly the map of the whole image:
:func:`equalization_map` computes the per-channel map from an image (or a subsample of it), and
:func:`apply_equalization` applies it to any part of that image. :func:`equalize` does both on
one array. The map is the one of scikit-image's ``equalize_hist`` (256 bins between the channel's
minimum and maximum, cumulative counts interpolated at the bin centres).

Only numpy is imported here: inference uses this module and must not pay for scikit-image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import ConfigError

#: Histogram bins of the map (scikit-image's default).
EQUALIZE_BINS = 256


@dataclass(frozen=True)
class EqualizationMap:
    """Per-channel monotone intensity map: ``x[c]`` (bin centres) -> ``y[c]`` (cumulative share).

    Both arrays are float32 ``(C, B)``; a constant channel maps every value to 0.
    """

    x: np.ndarray
    y: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.x.shape[0])


def _channel_last(x: np.ndarray, channel_axis: int | None) -> np.ndarray:
    return np.moveaxis(x, channel_axis, -1) if channel_axis is not None else x[..., None]


def equalization_map(
    sample: np.ndarray, *, channel_axis: int | None = None, bins: int = EQUALIZE_BINS
) -> EqualizationMap:
    """The equalisation map of an image (or of a representative subsample of it).

    Parameters
    ----------
    sample : np.ndarray
        Intensities, any spatial shape, with a channel axis at ``channel_axis`` (or none).
        Non-finite values are ignored.
    channel_axis : int, optional
    bins : int
        Histogram bins per channel (>= 2).
    """
    if bins < 2:
        raise ConfigError(f"equalisation needs at least 2 histogram bins; got {bins}")
    x = _channel_last(np.asarray(sample), channel_axis)
    n_ch = x.shape[-1]
    flat = x.reshape(-1, n_ch)
    xs = np.zeros((n_ch, bins), np.float32)
    ys = np.zeros((n_ch, bins), np.float32)
    for c in range(n_ch):
        ch = flat[:, c].astype(np.float64)
        ch = ch[np.isfinite(ch)]
        lo, hi = (float(ch.min()), float(ch.max())) if ch.size else (0.0, 0.0)
        if not hi > lo:  # constant (or empty): every value maps to 0
            xs[c] = lo + np.arange(bins, dtype=np.float32)
            continue
        hist, edges = np.histogram(ch, bins=bins, range=(lo, hi))
        xs[c] = (edges[:-1] + edges[1:]) / 2
        ys[c] = np.cumsum(hist) / hist.sum()
    return EqualizationMap(x=xs, y=ys)


def apply_equalization(image: np.ndarray, emap: EqualizationMap, *, channel_axis: int | None = None) -> np.ndarray:
    """Apply ``emap`` to ``image`` (any part of the image it was computed on); float32 in [0, 1].

    Raises
    ------
    ConfigError
        The image has another number of channels than the map.
    """
    x = _channel_last(np.asarray(image), channel_axis)
    if x.shape[-1] != emap.channels:
        raise ConfigError(
            f"equalisation map has {emap.channels} channel(s); the image has {x.shape[-1]}"
        )
    out = np.empty(x.shape, np.float32)
    for c in range(x.shape[-1]):
        out[..., c] = np.interp(x[..., c], emap.x[c], emap.y[c])
    return np.moveaxis(out, -1, channel_axis) if channel_axis is not None else out[..., 0]


def equalize(image: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Histogram equalisation of each channel over the whole image; float32 in [0, 1]."""
    return apply_equalization(image, equalization_map(image, channel_axis=channel_axis), channel_axis=channel_axis)
