"""``2d-gray``: grayscale fluorescence nuclei (DAPI/Hoechst-like), in the spirit of BBBC039.

uint16 ``(Y, X)`` images of touching, irregular oval nuclei in loose clusters, with a wide
spread of brightness (DNA content and stain uptake differ from cell to cell), a few small,
bright, condensed nuclei (mitotic or apoptotic), chromatin texture, optical blur, a smooth
background and illumination gradient, Poisson shot noise and Gaussian read noise.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.demo._common import DemoSample, blob_2d, camera, check_shape, paint, relabel, smooth_noise
from pointseg_cli.demo.nuclei3d import DIFFICULTIES
from pointseg_cli.errors import check_choice

log = logging.getLogger(__name__)

GRAY_CLASSES = ("nucleus",)
DEFAULT_SHAPE = (256, 256)
MIN_SHAPE = (64, 64)

# Per difficulty: (nuclei per 256x256, brightness log-std, photons at brightness 1, blur sigma px,
# read noise, allowed overlap before rejection)
_LEVELS = {
    "easy": (30, 0.25, 600.0, 1.0, 2.0, 0.05),
    "medium": (50, 0.4, 250.0, 1.4, 4.0, 0.12),
    "hard": (75, 0.55, 90.0, 1.9, 6.0, 0.2),
}


def make_gray_nuclei(
    shape: Sequence[int] = DEFAULT_SHAPE,
    *,
    seed: int | np.random.SeedSequence = 0,
    difficulty: str = "medium",
    name: str = "gray",
) -> DemoSample:
    """Render a grayscale fluorescence image of touching nuclei with instance labels.

    Parameters
    ----------
    shape : (Y, X)
        Image shape in pixels (sizes are tuned for about 0.65 µm/pixel, 10x-20x).
    seed : int or SeedSequence
        Same seed, same image.
    difficulty : {'easy', 'medium', 'hard'}
        Crowding and touching, spread of brightness, signal-to-noise ratio and blur.

    Returns
    -------
    DemoSample
        ``image`` uint16 ``(Y, X)``, ``labels`` uint16 instance ids, ``classes`` uint8 (1 inside nuclei).
    """
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = check_shape(shape, 2, "2D grayscale nuclei")
    rng = np.random.default_rng(seed)
    density, spread, photons, blur, read_noise, overlap_max = _LEVELS[difficulty]
    area = shape[0] * shape[1] / 256.0**2
    n_target = max(1, int(density * area * rng.uniform(0.8, 1.2)))
    clusters = rng.uniform(0.1, 0.9, size=(max(1, n_target // 5), 2)) * shape

    labels = np.zeros(shape, np.uint16)
    best = np.full(shape, np.inf, np.float32)
    signal = np.zeros(shape, np.float32)
    texture = smooth_noise(rng, shape, 1.5)
    next_id = 1
    for _ in range(n_target):
        condensed = rng.random() < 0.06
        for _attempt in range(30):
            if rng.random() < 0.7:
                centre = clusters[rng.integers(len(clusters))] + rng.normal(0, 18, 2)
            else:
                centre = rng.uniform(0, 1, 2) * shape
            r = rng.uniform(3.0, 4.5) if condensed else rng.uniform(7.0, 11.5)
            axes_r = (r * rng.uniform(1.0, 1.35), r * rng.uniform(0.75, 1.0))
            box, dist = blob_2d(rng, centre, axes_r, rng.uniform(0, np.pi), shape, wobble_std=0.06)
            if box is None:
                continue
            inside = dist < 1.0
            if inside.sum() >= 12 and (labels[box][inside] > 0).mean() <= overlap_max:
                break
        else:
            continue
        painted = paint(labels, best, box, dist, next_id)
        if condensed:
            level = rng.uniform(2.5, 4.0)
            signal[box][painted] = level * (1.0 + 0.1 * texture[box][painted])
        else:
            level = float(np.exp(rng.normal(0, spread)))
            # Chromatin texture, a slightly dimmer centre (nucleoli) and a soft bright rim.
            d = dist[painted]
            signal[box][painted] = level * (1.0 + 0.22 * texture[box][painted]) * (0.9 + 0.15 * d**2)
        next_id += 1

    blurred = ndi.gaussian_filter(signal, sigma=blur)
    background = 0.04 + 0.015 * smooth_noise(rng, shape, 40.0)
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    gy, gx = rng.uniform(-0.2, 0.2, size=2)
    illum = (1.0 + gy * yy + gx * xx).astype(np.float32)
    image = camera(rng, illum * photons * (blurred + background), read_noise=read_noise)
    labels = relabel(labels)
    log.debug("2d-gray %s: %d nuclei (target %d) in %s", name, int(labels.max()), n_target, shape)
    return DemoSample(name, image, labels, (labels > 0).astype(np.uint8), GRAY_CLASSES, "YX")
