"""Histogram equalisation (scikit-image ``equalize_hist``), e.g. for SIM volumes."""

from __future__ import annotations

import numpy as np


def equalize(image: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Histogram equalisation (scikit-image) of each channel over the whole image; float32 in [0, 1]."""
    from skimage.exposure import equalize_hist

    x = np.asarray(image)
    x = np.moveaxis(x, channel_axis, -1) if channel_axis is not None else x[..., None]
    out = np.empty(x.shape, np.float32)
    for c in range(x.shape[-1]):
        ch = x[..., c]
        out[..., c] = equalize_hist(ch) if ch.max() > ch.min() else 0.0
    return np.moveaxis(out, -1, channel_axis) if channel_axis is not None else out[..., 0]
