"""Preview rendering: regions, boundaries and seeds over the image (numpy + scikit-image only)."""

from __future__ import annotations

import numpy as np

from pointseg_cli.objectness.grow import ObjectnessResult


def _palette(n: int) -> np.ndarray:
    """``(n + 1, 3)`` float colours, row 0 black; neighbouring ids get distant hues."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    from skimage.color import hsv2rgb

    hsv = np.stack([hues, np.full(n, 0.75), np.full(n, 1.0)], axis=1)
    return np.concatenate([np.zeros((1, 3)), hsv2rgb(hsv[None])[0]], axis=0)


def _gray_or_rgb(image: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """``(Y, X, 3)`` float in [0, 1] from a normalised 2-D plane (any channel count)."""
    x = np.moveaxis(image, channel_axis, -1) if channel_axis is not None else image[..., None]
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    if x.shape[-1] == 3:
        return x
    return np.repeat(x[..., :1], 3, axis=-1) if x.shape[-1] == 1 else np.repeat(x.mean(-1, keepdims=True), 3, -1)


def render_preview(
    image: np.ndarray,
    result: ObjectnessResult,
    seeds: np.ndarray,
    *,
    channel_axis: int | None = None,
    alpha: float = 0.3,
) -> np.ndarray:
    """uint8 ``(Y, X, 3)`` overlay: regions tinted (brighter where objectness is high), boundary
    background in yellow, seeds as red dots with a white rim.

    Parameters
    ----------
    image : np.ndarray
        Normalised image in [0, 1] (as grown), ``(Y, X[, C])`` or ``(Z, Y, X[, C])``.
    result : ObjectnessResult
    seeds : np.ndarray
        int ``(N, ndim)`` seed pixels.
    channel_axis : int, optional
        Position of the channel axis in ``image`` (``-1`` for canonical images), if any.

    For volumes the middle z slice is shown, with the seeds that lie within two slices of it.
    """
    from skimage.draw import disk

    regions, obj, bg = result.regions, result.objectness, result.background
    seeds = np.asarray(seeds, np.int64).reshape(-1, regions.ndim)
    if regions.ndim == 3:
        z = regions.shape[0] // 2
        image = np.moveaxis(image, channel_axis, -1)[z] if channel_axis is not None else image[z]
        channel_axis = -1 if channel_axis is not None else None
        regions, obj, bg = regions[z], obj[z], bg[z]
        seeds = seeds[np.abs(seeds[:, 0] - z) <= 2][:, 1:]
    base = _gray_or_rgb(image, channel_axis)
    colours = _palette(int(regions.max()))[regions]
    a = (alpha * obj)[..., None]
    out = base * (1 - a) + colours * a
    out[bg] = (1.0, 0.9, 0.0)
    radius = max(1.5, min(regions.shape) / 150)
    for y, x in seeds:
        out[disk((y, x), radius + 1, shape=regions.shape)] = (1.0, 1.0, 1.0)
        out[disk((y, x), radius, shape=regions.shape)] = (0.9, 0.0, 0.0)
    return np.clip(np.rint(out * 255), 0, 255).astype(np.uint8)
