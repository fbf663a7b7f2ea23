"""``3d-sim``: SIM-like autofluorescence volumes of retinal pigment epithelium (RPE) cells.

A flat-mounted RPE monolayer seen from above, Z running from basal (index 0) to apical: a few
hexagonal-ish cells (a jittered hexagonal lattice cut into Voronoi cells), each with a dark
nucleus near the basal side, thin granule-free borders, a weakly autofluorescent cytoplasm and
hundreds of small, densely packed, touching granules in three classes:

``lipofuscin``
    roundish, ~1 µm across, bright autofluorescence with a granular inner texture.
``melanolipofuscin``
    larger and irregular (lobed), an autofluorescent cortex around dark melanin core(s).
``melanosome``
    small, elongated ellipsoids (spindles, tilted towards the apical-basal axis and more
    frequent apically), melanin: dimmer than the cytoplasm.

The optics and reconstruction of structured illumination microscopy are imitated: an
anisotropic Gaussian PSF (~110 nm lateral, ~350 nm axial FWHM), reconstruction ringing (dark
halos around bright granules), faint residual stripes of the three illumination orientations
(a honeycomb at the pattern period) on signal and noise, a faint axial ghost, Poisson shot noise
and high-frequency reconstruction noise. Voxels are anisotropic (:data:`SIM_VOXEL_SIZE`) and
the size is carried in the returned sample, so the files record it. See docs/demo-data.md for
the sources of the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.demo._common import DemoSample, check_shape, local_grid, paint, random_rotation, smooth_noise
from pointseg_cli.demo.nuclei3d import DIFFICULTIES
from pointseg_cli.errors import ConfigError, check_choice

log = logging.getLogger(__name__)

#: Class names in id order (1..3; sorted, as ``annotate-import`` would number them).
SIM_CLASSES = ("lipofuscin", "melanolipofuscin", "melanosome")
#: Voxel size (Z, Y, X) in µm: 40 nm reconstructed SIM pixels, 125 nm z steps.
SIM_VOXEL_SIZE = (0.125, 0.04, 0.04)
DEFAULT_SHAPE = (40, 384, 384)
MIN_SHAPE = (16, 96, 96)

# Per difficulty: (packing fraction of the cytoplasm, photons at lipofuscin brightness, stripe
# amplitude, ringing strength, reconstruction-noise factor, how far ML and L brightness are pulled
# together (0 = as specified))
_LEVELS = {
    "easy": (0.55, 300.0, 0.04, 0.25, 0.5, 0.0),
    "medium": (0.65, 120.0, 0.08, 0.4, 1.0, 0.15),
    "hard": (0.75, 50.0, 0.12, 0.55, 1.5, 0.3),
}
_MIX = (0.5, 0.3, 0.2)  # mean share of lipofuscin, melanolipofuscin, melanosomes per cell
_CYTOPLASM = 0.16  # autofluorescence of the cytoplasm relative to a typical lipofuscin granule
_PATTERN_PERIOD_UM = 0.22  # SIM illumination pattern period for ~488 nm excitation


def _cells(rng: np.random.Generator, shape_yx: tuple[int, int], pix: float) -> tuple[np.ndarray, np.ndarray]:
    """Voronoi cells of a jittered hexagonal lattice: cell id per (Y, X) pixel and a border mask."""
    spacing = rng.uniform(8.0, 10.0) / pix  # cell centre spacing in pixels (real RPE: ~14-20 µm)
    extent = np.array(shape_yx, float)
    rows = int(np.ceil(extent[0] / (spacing * 0.866))) + 3
    cols = int(np.ceil(extent[1] / spacing)) + 3
    r, c = np.meshgrid(np.arange(rows) - 1, np.arange(cols) - 1, indexing="ij")
    seeds = np.stack([r * spacing * 0.866, (c + 0.5 * (r % 2)) * spacing], -1).reshape(-1, 2)
    seeds += rng.uniform(-1, 1, size=2) * spacing + rng.normal(0, 0.12 * spacing, size=seeds.shape)
    yy, xx = np.meshgrid(np.arange(shape_yx[0]), np.arange(shape_yx[1]), indexing="ij")
    d = np.sqrt((yy[None] - seeds[:, 0, None, None]) ** 2 + (xx[None] - seeds[:, 1, None, None]) ** 2)
    order = np.argsort(d, axis=0)[:2]
    nearest = order[0]
    d1 = np.take_along_axis(d, order[:1], 0)[0]
    d2 = np.take_along_axis(d, order[1:2], 0)[0]
    border = (d2 - d1) < 2 * 0.15 / pix  # ~0.3 µm wide granule-free zone between cells
    _, cell = np.unique(nearest, return_inverse=True)
    return cell.reshape(shape_yx).astype(np.int32) + 1, border


def _granule_params(rng: np.random.Generator, cls: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Semi-axes (µm), rotation and surface-bump strength of one granule of class ``cls``."""
    rot = random_rotation(rng, 3)
    if cls == 1:  # lipofuscin: ~0.97 ± 0.22 µm across, roundish
        r = float(np.clip(rng.normal(0.48, 0.1), 0.3, 0.72))
        return r * rng.uniform(0.85, 1.15, size=3), rot, 0.04
    if cls == 2:  # melanolipofuscin: 1.0-1.6 µm, irregular
        return rng.uniform(0.5, 0.8) * rng.uniform(0.75, 1.2, size=3), rot, 0.14
    # melanosome: spindle, long semi-axis 0.35-0.7 µm, short 0.13-0.22 µm, tilted towards Z
    axes_r = np.array([rng.uniform(0.35, 0.7), rng.uniform(0.13, 0.22), rng.uniform(0.13, 0.22)])
    long_axis = rng.normal(size=3) * (2.5, 1.0, 1.0)
    long_axis /= np.linalg.norm(long_axis)
    other = np.linalg.qr(np.column_stack([long_axis, rng.normal(size=(3, 2))]))[0]
    return axes_r, np.column_stack([long_axis, other[:, 1], other[:, 2]]), 0.0


def _granule(rng: np.random.Generator, params, centre_um: np.ndarray, scale: np.ndarray, shape):
    """Box, normalised distance (< 1 inside) and local coordinates (µm) of one granule."""
    axes_r, rot, lobes = params
    half = np.sqrt(((rot * axes_r) ** 2).sum(1)) * (1.0 + 2 * lobes) + 0.05  # box half-widths per axis, µm
    box, grid = local_grid(centre_um / scale, half, shape, scale)
    if box is None:
        return None, None, None
    local = grid.astype(np.float32) @ rot.astype(np.float32)
    dist = np.sqrt(((local / axes_r.astype(np.float32)) ** 2).sum(-1))
    if lobes:  # low-order bumps on the surface: lobed, irregular outlines
        u = local / (np.sqrt((local**2).sum(-1, keepdims=True)) + 1e-6)
        proj = u @ random_rotation(rng, 3).astype(np.float32)
        amp = rng.normal(0, lobes, 3).astype(np.float32)
        bumps = amp[0] * proj[..., 0] ** 2 + amp[1] * proj[..., 1] ** 3 + amp[2] * proj[..., 2] ** 3
        dist = dist / np.clip(1.0 + bumps, 0.5, None)
    return box, dist.astype(np.float32), local


def _place(rng: np.random.Generator, radii: np.ndarray, sampler, *, touch: float, tries: int = 30) -> np.ndarray:
    """Random sequential placement of spheres of ``radii`` (µm): centres at least ``touch`` x the sum
    of radii apart (< 1: neighbours overlap a little, so painted granules touch). NaN rows: not placed."""
    centres = np.full((len(radii), 3), np.nan)
    for i, r in enumerate(radii):
        for _ in range(tries):
            c = sampler(i)
            d = np.sqrt(((centres[:i] - c) ** 2).sum(1))
            if not np.any(d < touch * (radii[:i] + r)):
                centres[i] = c
                break
    return centres


def _brightness(rng: np.random.Generator, cls: int, local: np.ndarray, axes_r: np.ndarray, alike: float) -> np.ndarray:
    """Autofluorescence of one granule per voxel of its box (lipofuscin ~1, before texture)."""
    shape = local.shape[:-1]
    if cls == 1:
        return np.full(shape, float(np.exp(rng.normal(0, 0.2))), np.float32)
    elif cls == 2:
        cortex = (0.65 + alike * 0.35) * float(np.exp(rng.normal(0, 0.2)))
        level = np.full(shape, cortex, np.float32)
        for _ in range(rng.integers(1, 3)):  # dark melanin core(s), off-centre
            off = rng.normal(0, 0.3, 3) * axes_r
            core_r = axes_r * rng.uniform(0.35, 0.6)
            core = np.sqrt((((local - off) / core_r) ** 2).sum(-1))
            level = np.where(core < 1.0, 0.08 + alike * 0.3, level)
        return level
    return np.full(shape, 0.05, np.float32)


def make_sim_volume(
    shape: Sequence[int] = DEFAULT_SHAPE,
    *,
    seed: int | np.random.SeedSequence = 0,
    difficulty: str = "medium",
    name: str = "sim",
    voxel_size: Sequence[float] = SIM_VOXEL_SIZE,
) -> DemoSample:
    """Render a SIM-like RPE volume with three granule classes, instance labels and cells.

    Parameters
    ----------
    shape : (Z, Y, X)
        Volume shape in voxels; the default 40x512x512 is 5 x 20.5 x 20.5 µm (a few cells).
    seed : int or SeedSequence
        Same seed, same volume.
    difficulty : {'easy', 'medium', 'hard'}
        Granule packing, signal-to-noise ratio, SIM artefact strength and how alike lipofuscin
        and melanolipofuscin look.
    voxel_size : (z, y, x) in µm
        Physical voxel size; granule and cell sizes are physical, so a coarser voxel gives
        smaller objects in voxels.

    Returns
    -------
    DemoSample
        ``image`` uint16 ``(Z, Y, X)``, ``labels`` uint16 granule ids, ``classes`` uint8 ids 1..3
        (:data:`SIM_CLASSES`), ``voxel_size`` and ``cell_of`` (the cell of each granule).
    """
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = check_shape(shape, 3, "3D SIM volumes")
    scale = np.array([float(v) for v in voxel_size])
    if scale.shape != (3,) or not np.all(scale > 0):
        raise ConfigError(f"voxel_size must be three positive sizes (z, y, x) in µm; got {list(voxel_size)}")
    rng = np.random.default_rng(seed)
    packing, photons, stripe_amp, ringing, recon_noise, alike = _LEVELS[difficulty]
    extent = np.array(shape) * scale
    cell_yx, border = _cells(rng, shape[1:], float(scale[1]))
    n_cells = int(cell_yx.max())

    # Nuclei: oblate ellipsoids at the basal side (Z = 0), one per cell, darker than the cytoplasm.
    zz = (np.arange(shape[0]) * scale[0])[:, None, None]
    yy, xx = np.meshgrid(np.arange(shape[1]) * scale[1], np.arange(shape[2]) * scale[2], indexing="ij")
    nucleus = np.zeros(shape, bool)
    for c in range(1, n_cells + 1):
        pix = np.argwhere(cell_yx == c)
        cy, cx = pix.mean(0) * scale[1:] + rng.normal(0, 0.6, 2)
        rz = min(2.0, 0.4 * extent[0])
        rxy = rng.uniform(2.0, 2.6)
        nucleus |= ((yy - cy) ** 2 + (xx - cx) ** 2)[None] / rxy**2 + (zz / rz) ** 2 < 1.0
    cytoplasm = ~nucleus & ~border[None]

    labels = np.zeros(shape, np.uint16)
    classes = np.zeros(shape, np.uint8)
    best = np.full(shape, np.inf, np.float32)
    level = np.zeros(shape, np.float32)
    owner: list[int] = [0]
    mean_volume = np.array([4.19 * 0.48**3, 4.19 * 0.65**3 * 0.95, 4.19 * 0.52 * 0.175**2])  # µm³ per class
    for c in range(1, n_cells + 1):
        in_cell = cytoplasm & (cell_yx == c)[None]
        cyto_um3 = float(in_cell.sum() * np.prod(scale))
        mix = rng.dirichlet(np.array(_MIX) * 12.0)
        cls_of = rng.choice([1, 2, 3], size=int(packing * cyto_um3 / float(mix @ mean_volume)), p=mix)
        params = [_granule_params(rng, int(k)) for k in cls_of]
        radii = np.array([float(np.prod(p[0])) ** (1 / 3) for p in params])
        voxels = np.argwhere(in_cell)  # centres are drawn inside the cell's cytoplasm
        apical = voxels[voxels[:, 0] >= 0.4 * shape[0]]

        def sampler(i: int, cls_of=cls_of, voxels=voxels, apical=apical) -> np.ndarray:
            pool = apical if cls_of[i] == 3 and len(apical) else voxels  # melanosomes sit apically
            return (pool[rng.integers(len(pool))] + rng.uniform(-0.5, 0.5, 3)) * scale

        centres = _place(rng, radii, sampler, touch=0.8)
        for k, params_k, centre in zip(cls_of, params, centres, strict=True):
            if np.isnan(centre[0]):
                continue
            box, dist, local = _granule(rng, params_k, centre, scale, shape)
            if box is None:
                continue
            painted = paint(labels, best, box, np.where(in_cell[box], dist, np.inf), len(owner))
            if painted.sum() < 8:
                labels[box][painted] = 0
                best[box][painted] = np.inf
                continue
            classes[box][painted] = k
            level[box][painted] = _brightness(rng, int(k), local, params_k[0], alike)[painted]
            owner.append(c)

    # Texture: fine granular pattern inside lipofuscin, smoother in the rest.
    fine = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=(0.6, 1.2, 1.2))
    fine /= fine.std() + 1e-6
    coarse = smooth_noise(rng, shape, (6.0, 25.0, 25.0))
    signal = np.where(nucleus, 0.03, np.where(border[None], 0.08, _CYTOPLASM * (1.0 + 0.25 * coarse)))
    signal = signal.astype(np.float32)
    tex = np.where(classes == 1, 1.0 + 0.35 * fine, 1.0 + 0.12 * fine)
    signal = np.where(labels > 0, level * tex, signal).astype(np.float32)
    image = _sim_optics(rng, signal, scale, photons=photons, stripe_amp=stripe_amp, ringing=ringing,
                        recon_noise=recon_noise)

    ids = np.unique(labels)
    lut = np.zeros(len(owner), np.uint16)
    lut[ids] = np.arange(len(ids), dtype=np.uint16)
    cell_of = np.asarray(owner)[ids]  # cell_of[new id] (index 0 is background)
    cell_of[0] = 0
    log.debug("3d-sim %s: %d cells, %d granules, per class %s", name, n_cells, len(ids) - 1,
              np.bincount(classes.ravel(), minlength=4)[1:])
    return DemoSample(name, image, lut[labels], classes, SIM_CLASSES, "ZYX",
                      voxel_size=tuple(float(v) for v in scale), cell_of=cell_of)


def _stripes(rng: np.random.Generator, shape: tuple[int, ...], scale: np.ndarray, amp: float) -> np.ndarray:
    """Residual illumination pattern: three orientations 60° apart at the pattern period (Y, X)."""
    yy, xx = np.meshgrid(np.arange(shape[1]) * scale[1], np.arange(shape[2]) * scale[2], indexing="ij")
    theta0 = rng.uniform(0, np.pi / 3)
    out = np.zeros(shape[1:], np.float32)
    for k in range(3):
        t = theta0 + k * np.pi / 3
        a = amp * rng.uniform(0.4, 1.0)
        out += a * np.cos(2 * np.pi * (yy * np.sin(t) + xx * np.cos(t)) / _PATTERN_PERIOD_UM + rng.uniform(0, 6.3))
    return out


def _sim_optics(
    rng: np.random.Generator,
    signal: np.ndarray,
    scale: np.ndarray,
    *,
    photons: float,
    stripe_amp: float,
    ringing: float,
    recon_noise: float,
) -> np.ndarray:
    """PSF blur, reconstruction ringing, residual stripes, axial ghost and noise, into uint16."""
    psf = np.array([0.15, 0.047, 0.047]) / scale  # Gaussian sigma: ~350 nm axial, ~110 nm lateral FWHM
    blurred = ndi.gaussian_filter(signal, sigma=psf)
    # Wiener-filter overshoot: dark halos around bright structures.
    halo = ndi.gaussian_filter(blurred, sigma=np.array([0.3, 0.12, 0.12]) / scale)
    recon = blurred + ringing * (blurred - halo)
    shift = max(1, int(round(0.5 / scale[0])))  # faint axial ghost ~0.5 µm above and below
    ghost = np.zeros_like(recon)
    ghost[shift:] += recon[:-shift]
    ghost[:-shift] += recon[shift:]
    recon = recon + 0.03 * ghost
    stripes = _stripes(rng, signal.shape, scale, stripe_amp)
    recon = recon * (1.0 + stripes[None])
    expected = photons * np.clip(recon, 0, None) + 2.0
    counts = rng.poisson(expected).astype(np.float32)
    # Reconstruction amplifies high spatial frequencies of the shot noise, along the pattern too.
    white = rng.standard_normal(signal.shape, dtype=np.float32)
    hf = white - ndi.gaussian_filter(white, sigma=(1.0, 1.5, 1.5))
    counts += recon_noise * hf * np.sqrt(expected) * (1.0 + 4.0 * stripes[None])
    negative = photons * np.clip(recon, None, 0)  # ringing below the baseline survives, clipped at 0
    return np.clip(200.0 + 4.0 * (counts + negative), 0, 65535).astype(np.uint16)
