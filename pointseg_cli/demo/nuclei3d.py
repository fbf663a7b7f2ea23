"""``3d-nuclei``: fluorescence volumes of clustered, touching nuclei (in the spirit of BBBC024).

Clusters of touching ellipsoidal nuclei with random orientation and size, chromatin texture and
bright spots, an anisotropic Gaussian PSF (wider in Z), out-of-focus haze, uneven illumination,
Poisson shot noise and Gaussian read noise; uint16 ``(Z, Y, X)`` with uint16 instance labels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.demo._common import (
    DemoSample,
    camera,
    check_shape,
    local_grid,
    paint,
    random_rotation,
    relabel,
    smooth_noise,
)
from pointseg_cli.errors import ConfigError, check_choice

log = logging.getLogger(__name__)

DIFFICULTIES = ("easy", "medium", "hard")
NUCLEI_CLASSES = ("nucleus",)
DEFAULT_SHAPE = (64, 256, 256)
MIN_SHAPE = (16, 48, 48)

# Per difficulty: 3D (fill fraction, photons in nuclei, read noise, PSF sigma xy, illumination dip)
_NUCLEI_LEVELS = {
    "easy": (0.10, 400.0, 2.0, 0.8, 0.15),
    "medium": (0.18, 150.0, 4.0, 1.2, 0.30),
    "hard": (0.26, 60.0, 6.0, 1.6, 0.45),
}

def make_nuclei_volume(
    shape: Sequence[int] = DEFAULT_SHAPE,
    *,
    seed: int | np.random.SeedSequence = 0,
    difficulty: str = "medium",
    anisotropy: float = 2.0,
    name: str = "nuclei3d",
) -> DemoSample:
    """Render a fluorescence volume of clustered, touching nuclei with instance labels.

    Parameters
    ----------
    shape : (Z, Y, X)
        Volume shape in voxels.
    seed : int or SeedSequence
        Same seed, same volume.
    difficulty : {'easy', 'medium', 'hard'}
        Density of nuclei, signal-to-noise ratio, blur and illumination unevenness.
    anisotropy : float
        Z step over XY pixel size (nuclei look flattened in voxel units; the PSF is wider in Z).

    Returns
    -------
    DemoSample
        ``image`` uint16 ``(Z, Y, X)``, ``labels`` uint16 instance ids, ``classes`` uint8 (1 inside nuclei).
    """
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = check_shape(shape, 3, "3D nuclei")
    if not 1.0 <= anisotropy <= 8.0:
        raise ConfigError(f"anisotropy must be between 1 and 8; got {anisotropy}")
    rng = np.random.default_rng(seed)
    fill, photons, read_noise, psf_xy, illum_dip = _NUCLEI_LEVELS[difficulty]
    scale = np.array([anisotropy, 1.0, 1.0])  # voxel -> physical (XY pixel) units
    extent = np.array(shape) * scale
    r_mean = float(np.clip(min(extent[1:]) / 16.0, 5.0, 14.0))
    n_target = max(1, int(fill * rng.uniform(0.8, 1.2) * np.prod(extent) / (4.0 / 3.0 * np.pi * r_mean**3)))

    # Cluster centres, then nuclei around them; reject heavy overlaps so nuclei touch but stay distinct.
    n_clusters = max(1, n_target // 6)
    clusters = rng.uniform(0.15, 0.85, size=(n_clusters, 3)) * extent
    centers: list[np.ndarray] = []
    radii: list[np.ndarray] = []
    for _ in range(n_target):
        axes_r = r_mean * rng.uniform(0.75, 1.3) * rng.uniform(0.8, 1.2, size=3)
        for _attempt in range(40):
            c = clusters[rng.integers(n_clusters)] + rng.normal(0, 1.3 * r_mean, size=3)
            if np.any(c < 0) or np.any(c >= extent):
                continue
            if all(
                np.linalg.norm(c - o) > 0.72 * (axes_r.mean() + ro.mean()) for o, ro in zip(centers, radii, strict=True)
            ):
                centers.append(c)
                radii.append(axes_r)
                break

    labels = np.zeros(shape, np.uint16)
    best = np.full(shape, np.inf, np.float32)
    signal = np.zeros(shape, np.float32)
    texture = 1.0 + 0.25 * smooth_noise(rng, shape, 3.0)
    spots = np.zeros(shape, np.float32)
    for i, (c, axes_r) in enumerate(zip(centers, radii, strict=True), start=1):
        rot = random_rotation(rng, 3)
        box, grid = local_grid(c / scale, float(axes_r.max()) * 1.15, shape, scale)
        if box is None:
            continue
        local = grid @ rot
        dist = np.sqrt(((local / axes_r) ** 2).sum(-1))
        u = local / (np.linalg.norm(local, axis=-1, keepdims=True) + 1e-6)
        bumps = sum(rng.normal(0, 0.06) * (u @ random_rotation(rng, 3)[0]) ** 3 for _ in range(3))
        dist = (dist / (1.0 + bumps)).astype(np.float32)
        inside = paint(labels, best, box, dist, i)
        brightness = rng.uniform(0.6, 1.4)
        # Slightly brighter rim (nuclear envelope) over a chromatin-textured interior.
        signal[box][inside] = brightness * (0.85 + 0.25 * np.clip(dist[inside] - 0.6, 0, 1))
        idx = np.argwhere(inside)
        if len(idx):
            pick = idx[rng.integers(len(idx), size=rng.integers(3, 9))]
            for p in pick:
                spots[tuple(np.asarray(p) + [s.start for s in box])] += brightness * rng.uniform(4, 10)
    signal *= texture
    signal += ndi.gaussian_filter(spots, sigma=(0.7, 1.2, 1.2))
    signal[labels == 0] = 0.0
    # Anisotropic PSF (wider in Z), then faint out-of-focus haze.
    psf = (psf_xy * anisotropy, psf_xy, psf_xy)  # in voxels; physically the Z sigma is anisotropy**2 larger
    blurred = ndi.gaussian_filter(signal, sigma=psf)
    small = blurred[::4, ::4, ::4]
    haze = ndi.zoom(
        ndi.gaussian_filter(small, sigma=3.0), [s / m for s, m in zip(shape, small.shape, strict=True)], order=1
    )
    blurred += 0.12 * haze[: shape[0], : shape[1], : shape[2]]
    # Uneven illumination: a smooth dip across the field plus a Z attenuation with depth.
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[1]), np.linspace(-1, 1, shape[2]), indexing="ij")
    oy, ox = rng.uniform(-0.6, 0.6, size=2)
    field = 1.0 - illum_dip * np.clip(((yy - oy) ** 2 + (xx - ox) ** 2) / 2.0, 0, 1)
    depth = 1.0 - 0.5 * illum_dip * np.linspace(0, 1, shape[0])
    illum = (depth[:, None, None] * field[None]).astype(np.float32)
    expected = illum * (photons * blurred + 0.04 * photons + 2.0)
    image = camera(rng, expected, read_noise=read_noise)
    classes = (labels > 0).astype(np.uint8)
    log.debug("3d-nuclei %s: %d nuclei (target %d) in %s", name, len(centers), n_target, shape)
    return DemoSample(name, image, relabel(labels), classes, NUCLEI_CLASSES, "ZYX")


