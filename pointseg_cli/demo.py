"""Synthetic demo data: 3D fluorescence nuclei volumes and 2D multi-class H&E-like tiles.

Two generators, each returning a :class:`DemoSample` (image plus ground truth), and
:func:`generate_demo_data`, which writes a small seeded data set to disk:

``3d-nuclei``
    Volumes in the spirit of BBBC024 (synthetic HL60 nuclei): clusters of touching ellipsoidal
    nuclei with random orientation and size, chromatin texture and bright spots, an anisotropic
    Gaussian PSF (wider in Z), out-of-focus haze, uneven illumination, Poisson shot noise and
    Gaussian read noise; uint16 ``(Z, Y, X)`` with uint16 instance labels.
``2d-he``
    RGB uint8 ``(Y, X, 3)`` tiles rendered through a Beer-Lambert model from hematoxylin and
    eosin concentration maps: fibrous pink stroma with pale gaps and three nucleus classes
    (``epithelial``: large, pale, vesicular, in nests with cytoplasm; ``fibroblast``: elongated
    spindles along the fibres; ``lymphocyte``: small, round, dark). The stain vectors and
    intensities are perturbed per tile. Ground truth: instance ids and class ids per pixel.

Layout written by :func:`generate_demo_data`::

    DIR/images/<name>.tif            image (OME axes ZYX or YXC)
    DIR/masks/<name>.labels.tif      uint16 instance ids, 0 background
    DIR/masks/<name>.classes.tif     uint8 class id per pixel (0 background, 1..K = classes.txt)
    DIR/classes.txt                  object class names in id order, one per line
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.progress import ProgressCallback, noop_progress

log = logging.getLogger(__name__)

KINDS = ("3d-nuclei", "2d-he")
DIFFICULTIES = ("easy", "medium", "hard")
#: Class names of the H&E tiles, in id order (ids 1..3; sorted, as ``annotate-import`` would order them).
HE_CLASSES = ("epithelial", "fibroblast", "lymphocyte")
NUCLEI_CLASSES = ("nucleus",)
DEFAULT_SIZE = {"3d-nuclei": (64, 256, 256), "2d-he": (256, 256)}
_MIN_SIZE = {"3d-nuclei": (16, 48, 48), "2d-he": (64, 64)}
_MAX_SIDE = 4096
_MAX_N = 10_000

# Per difficulty: 3D (fill fraction, photons in nuclei, read noise, PSF sigma xy, illumination dip)
_NUCLEI_LEVELS = {
    "easy": (0.10, 400.0, 2.0, 0.8, 0.15),
    "medium": (0.18, 150.0, 4.0, 1.2, 0.30),
    "hard": (0.26, 60.0, 6.0, 1.6, 0.45),
}
# Per difficulty: 2D (nuclei per 256x256, stain jitter, blur sigma, noise std, class contrast factor)
_HE_LEVELS = {
    "easy": (35, 0.04, 0.5, 2.0, 1.0),
    "medium": (55, 0.08, 0.8, 4.0, 0.85),
    "hard": (80, 0.12, 1.1, 7.0, 0.7),
}
# Ruifrok & Johnston optical-density vectors of hematoxylin and eosin (R, G, B).
_H_VEC = np.array([0.650, 0.704, 0.286])
_E_VEC = np.array([0.072, 0.990, 0.105])


@dataclass(frozen=True)
class DemoSample:
    """One generated image with its ground truth.

    Attributes
    ----------
    name : str
        File stem.
    image : np.ndarray
        ``(Z, Y, X)`` uint16 volume or ``(Y, X, 3)`` uint8 RGB tile.
    labels : np.ndarray
        Instance ids, uint16, spatial shape of ``image``; 0 is background.
    classes : np.ndarray
        Class id per pixel, uint8, 0 background, ``i + 1`` for ``class_names[i]``.
    class_names : tuple of str
        Object class names in id order.
    axes : str
        Axes of ``image``: ``'ZYX'`` or ``'YXC'``.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]
    axes: str

    def __post_init__(self) -> None:
        spatial = self.image.shape[: len(self.labels.shape)]
        if self.labels.shape != spatial or self.classes.shape != spatial:
            raise ConfigError(
                f"labels {self.labels.shape} and classes {self.classes.shape} must match the image's "
                f"spatial shape {spatial}"
            )


@dataclass(frozen=True)
class DemoDataset:
    """What :func:`generate_demo_data` wrote (paths in generation order)."""

    out_dir: Path
    kind: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    classes: tuple[Path, ...]
    class_names: tuple[str, ...]
    n_objects: tuple[int, ...]


def parse_size(text: str | int | Sequence[int] | None, *, kind: str) -> tuple[int, ...]:
    """Parse and validate a size such as ``"64,256,256"`` / ``"64x256x256"`` for ``kind``.

    ``None`` gives the default size; a single number is used for every axis.
    """
    check_choice("kind", kind, KINDS)
    ndim = len(DEFAULT_SIZE[kind])
    if text is None:
        return DEFAULT_SIZE[kind]
    if isinstance(text, (int, np.integer)):
        text = [int(text)]
    if isinstance(text, str):
        parts = [p for p in text.replace("x", ",").replace("X", ",").split(",") if p.strip()]
        try:
            values = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(
                f"size must be {ndim} integers like {'x'.join(map(str, DEFAULT_SIZE[kind]))}; got {text!r}"
            ) from None
    else:
        values = [int(v) for v in text]
    if len(values) == 1:
        values = values * ndim
    if len(values) != ndim:
        raise ConfigError(f"size for {kind} must have {ndim} values (got {len(values)}: {values})")
    low = _MIN_SIZE[kind]
    if any(v < m or v > _MAX_SIDE for v, m in zip(values, low, strict=True)):
        raise ConfigError(
            f"size for {kind} must be between {'x'.join(map(str, low))} and {_MAX_SIDE} per axis; got "
            f"{'x'.join(map(str, values))}"
        )
    return tuple(values)


# ----------------------------------------------------------------------------------------------- helpers
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise with correlation length ~``scale`` pixels (cheap: coarse + zoom)."""
    factor = max(1.0, scale / 2.0)
    coarse = tuple(max(2, int(np.ceil(s / factor)) + 1) for s in shape)
    field = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma=1.0, mode="wrap")
    field = ndi.zoom(
        field, [s / c for s, c in zip(shape, coarse, strict=True)], order=1, grid_mode=True, mode="grid-wrap"
    )
    field = field[tuple(slice(0, s) for s in shape)]
    return (field - field.mean()) / (field.std() + 1e-6)


def _random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _local_grid(center: np.ndarray, radius: float, shape: tuple[int, ...], scale: np.ndarray):
    """Bounding-box slices around ``center`` and coordinates relative to it (in physical units)."""
    lo = np.maximum(np.floor(center - radius / scale).astype(int), 0)
    hi = np.minimum(np.ceil(center + radius / scale).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None, None
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, center, scale, strict=True)]
    return box, np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def _paint(labels: np.ndarray, best: np.ndarray, box: tuple[slice, ...], dist: np.ndarray, label: int) -> np.ndarray:
    """Give voxels with normalised distance < 1 to ``label`` where it is the closest object."""
    inside = (dist < 1.0) & (dist < best[box])
    labels[box][inside] = label
    best[box][inside] = dist[inside]
    return inside


# ----------------------------------------------------------------------------------------------- 3D nuclei
def make_nuclei_volume(
    shape: Sequence[int] = DEFAULT_SIZE["3d-nuclei"],
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
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3:
        raise ConfigError(f"3D nuclei need a (Z, Y, X) shape; got {shape}")
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
    texture = 1.0 + 0.25 * _smooth_noise(rng, shape, 3.0)
    spots = np.zeros(shape, np.float32)
    for i, (c, axes_r) in enumerate(zip(centers, radii, strict=True), start=1):
        rot = _random_rotation(rng, 3)
        box, grid = _local_grid(c / scale, float(axes_r.max()) * 1.15, shape, scale)
        if box is None:
            continue
        local = grid @ rot
        dist = np.sqrt(((local / axes_r) ** 2).sum(-1))
        u = local / (np.linalg.norm(local, axis=-1, keepdims=True) + 1e-6)
        bumps = sum(rng.normal(0, 0.06) * (u @ _random_rotation(rng, 3)[0]) ** 3 for _ in range(3))
        dist = (dist / (1.0 + bumps)).astype(np.float32)
        inside = _paint(labels, best, box, dist, i)
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
    counts = rng.poisson(expected).astype(np.float32) + rng.normal(0, read_noise, size=shape).astype(np.float32)
    gain, offset = 4.0, 100.0
    image = np.clip(offset + gain * counts, 0, 65535).astype(np.uint16)
    classes = (labels > 0).astype(np.uint8)
    log.debug("3d-nuclei %s: %d nuclei (target %d) in %s", name, len(centers), n_target, shape)
    return DemoSample(name, image, _relabel(labels), classes, NUCLEI_CLASSES, "ZYX")


# ----------------------------------------------------------------------------------------------- 2D H&E
def _fibres(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Stroma fibre texture in about [-1, 1]: streaky noise along a dominant direction (radians)."""
    angle = float(rng.uniform(0, np.pi))
    side = int(np.ceil(np.hypot(*shape))) + 4
    streaks = ndi.gaussian_filter(rng.standard_normal((side, side)).astype(np.float32), sigma=(0.7, 12.0))
    streaks = ndi.rotate(streaks, np.degrees(angle), reshape=False, order=1, mode="reflect")
    oy, ox = (side - shape[0]) // 2, (side - shape[1]) // 2
    streaks = streaks[oy : oy + shape[0], ox : ox + shape[1]]
    return streaks / (np.abs(streaks).max() + 1e-6), angle


def _blob_2d(
    rng: np.random.Generator,
    center: np.ndarray,
    half_axes: tuple[float, float],
    angle: float,
    shape: tuple[int, int],
    *,
    spindle: bool = False,
) -> tuple[tuple[slice, ...] | None, np.ndarray | None]:
    """Normalised distance (< 1 inside) of an irregular ellipse or a tapered spindle around ``center``."""
    box, grid = _local_grid(center, max(half_axes) * 1.3 + 1, shape, np.ones(2))
    if box is None:
        return None, None
    c, s = np.cos(angle), np.sin(angle)
    u = grid[..., 0] * c + grid[..., 1] * s  # along the long axis
    v = -grid[..., 0] * s + grid[..., 1] * c
    a, b = half_axes
    if spindle:  # width tapers towards the ends: |v| <= b (1 - (u/a)^2)
        taper = np.clip(1.0 - (u / a) ** 2, 1e-3, None)
        return box, np.maximum(np.abs(u) / a, np.abs(v) / (b * taper)).astype(np.float32)
    theta = np.arctan2(v, u)
    wobble = 1.0 + sum(rng.normal(0, 0.05) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return box, (np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble).astype(np.float32)


def make_he_tile(
    shape: Sequence[int] = DEFAULT_SIZE["2d-he"],
    *,
    seed: int | np.random.SeedSequence = 0,
    difficulty: str = "medium",
    name: str = "he",
) -> DemoSample:
    """Render an H&E-like RGB tile with three nucleus classes (see :data:`HE_CLASSES`).

    Parameters
    ----------
    shape : (Y, X)
        Tile shape in pixels (sizes are tuned for about 0.5 um/pixel, 20x).
    seed : int or SeedSequence
        Same seed, same tile.
    difficulty : {'easy', 'medium', 'hard'}
        Crowding, stain variation, blur, noise, and how similar the classes look.

    Returns
    -------
    DemoSample
        ``image`` uint8 ``(Y, X, 3)``, ``labels`` uint16 instance ids, ``classes`` uint8 ids 1..3.
    """
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 2:
        raise ConfigError(f"2D H&E tiles need a (Y, X) shape; got {shape}")
    rng = np.random.default_rng(seed)
    density, stain_jitter, blur, noise_std, contrast = _HE_LEVELS[difficulty]
    area = shape[0] * shape[1] / 256.0**2
    fibres, fibre_angle = _fibres(rng, shape)

    # Stain concentration maps: eosin-rich fibrous stroma with pale gaps, faint hematoxylin.
    eosin = 0.42 + 0.25 * fibres + 0.05 * _smooth_noise(rng, shape, 20.0)
    gaps = _smooth_noise(rng, shape, 24.0) > rng.uniform(1.2, 2.2)
    eosin = np.where(gaps, 0.04, eosin)
    hema = 0.04 + 0.02 * _smooth_noise(rng, shape, 8.0)

    labels = np.zeros(shape, np.uint16)
    classes = np.zeros(shape, np.uint8)
    best = np.full(shape, np.inf, np.float32)
    cytoplasm = np.zeros(shape, bool)
    # Class mix varies per tile; a class may be missing from a tile (exercises the image-level loss).
    present = rng.random(3) < 0.85
    if present.sum() < 2:
        present[rng.choice(3, size=2, replace=False)] = True
    weights = rng.dirichlet([2.0, 2.0, 2.0]) * present
    counts = rng.multinomial(int(density * area * rng.uniform(0.7, 1.3)), weights / weights.sum())
    nest_centres = rng.uniform(0.15, 0.85, size=(max(1, int(round(2 * area))), 2)) * shape
    texture = _smooth_noise(rng, shape, 1.5)
    next_id = 1
    for cls_id, count in zip((1, 2, 3), counts, strict=True):
        for _ in range(count):
            for _attempt in range(25):
                if cls_id == 1:  # epithelial: large, round-ish, in nests
                    centre = nest_centres[rng.integers(len(nest_centres))] + rng.normal(0, 22, 2) * area**0.25
                    axes_r = (rng.uniform(8, 12), rng.uniform(6.5, 9.5))
                    angle = rng.uniform(0, np.pi)
                elif cls_id == 2:  # fibroblast: thin spindle along the fibres
                    centre = rng.uniform(0, 1, 2) * shape
                    axes_r = (rng.uniform(10, 16), rng.uniform(2.2, 3.5))
                    angle = fibre_angle + np.pi / 2 + rng.normal(0, 0.2)
                else:  # lymphocyte: small, round
                    centre = rng.uniform(0, 1, 2) * shape
                    r = rng.uniform(3.5, 5.0)
                    axes_r, angle = (r, r * rng.uniform(0.85, 1.0)), rng.uniform(0, np.pi)
                # Angles are from the y axis; the fibres run along (-sin a, cos a) in (y, x), so +90 deg.
                box, dist = _blob_2d(rng, centre, axes_r, angle, shape, spindle=cls_id == 2)
                if box is None:
                    continue
                inside = dist < 1.0
                overlap = (labels[box][inside] > 0).mean() if inside.any() else 1.0
                if inside.sum() >= 6 and overlap <= (0.08 if cls_id == 1 else 0.0):
                    break
            else:
                continue
            painted = _paint(labels, best, box, dist, next_id)
            classes[box][painted] = cls_id
            if cls_id == 1:
                cytoplasm[box] |= dist < 1.6
            next_id += 1

    # Nuclear staining per class; ``contrast`` < 1 makes the classes look more alike (harder).
    mix = lambda own, mean: mean + contrast * (own - mean)  # noqa: E731
    nuc_h = np.zeros(shape, np.float32)
    nuc_e = np.zeros(shape, np.float32)
    for lab, box in enumerate(ndi.find_objects(labels), start=1):
        if box is None:
            continue
        m = labels[box] == lab
        cls_id = int(classes[box][m][0])
        tex = texture[box][m]
        if cls_id == 1:
            h = mix(rng.uniform(0.5, 0.7), 0.8) * (1.0 + 0.35 * tex)
            h = np.where(best[box][m] > 0.8, h * 1.4, h)  # darker nuclear membrane, vesicular interior
        elif cls_id == 2:
            h = mix(rng.uniform(0.85, 1.0), 0.8) * (1.0 + 0.1 * tex)
        else:
            h = mix(rng.uniform(1.1, 1.35), 0.8) * (1.0 + 0.05 * tex)
        nuc_h[box][m] = h
        nuc_e[box][m] = 0.15
        if cls_id == 1 and rng.random() < 0.7:  # a nucleolus (dark dot) in most epithelial nuclei
            pts = np.argwhere(m & (best[box] < 0.4))
            if len(pts):
                y, x = pts[rng.integers(len(pts))] + [box[0].start, box[1].start]
                nuc_h[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] += 0.5
    cyto = cytoplasm & (labels == 0)
    hema = np.where(cyto, 0.12, hema) + nuc_h
    eosin = np.where(cyto, 0.3 + 0.05 * texture, eosin)
    eosin = np.where(labels > 0, nuc_e, eosin)

    # Beer-Lambert rendering with per-tile stain vectors, strengths and white point.
    h_vec = _H_VEC + rng.normal(0, stain_jitter, 3)
    e_vec = _E_VEC + rng.normal(0, stain_jitter, 3)
    h_vec, e_vec = (np.clip(v, 0.02, None) / np.linalg.norm(np.clip(v, 0.02, None)) for v in (h_vec, e_vec))
    h_strength, e_strength = rng.uniform(1 - 2 * stain_jitter, 1 + 2 * stain_jitter, 2)
    od = (
        np.clip(hema, 0, None)[..., None] * h_strength * h_vec + np.clip(eosin, 0, None)[..., None] * e_strength * e_vec
    )
    od = ndi.gaussian_filter(od.astype(np.float32), sigma=(blur, blur, 0))
    white = rng.uniform(235, 252, 3)
    rgb = white * np.exp(-od) + rng.normal(0, noise_std, od.shape)
    image = np.clip(np.round(rgb), 0, 255).astype(np.uint8)
    log.debug("2d-he %s: %d nuclei, per class %s", name, next_id - 1, np.bincount(classes.ravel(), minlength=4)[1:])
    return DemoSample(name, image, _relabel(labels), classes, HE_CLASSES, "YXC")


# ----------------------------------------------------------------------------------------------- writing
def generate_demo_data(
    out_dir: str | Path,
    *,
    kind: str,
    n: int = 4,
    size: Sequence[int] | int | str | None = None,
    seed: int = 0,
    difficulty: str = "medium",
    progress: ProgressCallback | None = None,
) -> DemoDataset:
    """Write ``n`` seeded samples of ``kind`` with ground truth into ``out_dir`` (created if needed).

    Sample ``i`` depends only on ``(seed, i)``, so ``--n 8`` extends ``--n 4`` with four new
    samples. Every file is written atomically; existing files of the same name are replaced.

    Parameters
    ----------
    out_dir : folder to write ``<name>.tif``, ``<name>.labels.tif``, ``<name>.classes.tif`` and
        ``classes.txt`` into (names: ``nuclei3d_000`` ... or ``he_000`` ...).
    kind : ``'3d-nuclei'`` or ``'2d-he'``.
    n : number of samples, 1 to 10000.
    size : spatial shape ``(Z, Y, X)`` or ``(Y, X)``, or a string like ``"64x256x256"``.
    seed, difficulty : see :func:`make_nuclei_volume` and :func:`make_he_tile`.
    """
    from pointseg_cli.io.images import atomic_output, write_tiff

    check_choice("kind", kind, KINDS)
    check_choice("difficulty", difficulty, DIFFICULTIES)
    shape = parse_size(size, kind=kind)
    if not 1 <= int(n) <= _MAX_N:
        raise ConfigError(f"n must be between 1 and {_MAX_N}; got {n}")
    if int(seed) < 0:
        raise ConfigError(f"seed must be a non-negative integer; got {seed}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output must be a folder; {out} is a file")
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or noop_progress
    make = make_nuclei_volume if kind == "3d-nuclei" else make_he_tile
    prefix = "nuclei3d" if kind == "3d-nuclei" else "he"
    images, labels, classes, counts = [], [], [], []
    class_names: tuple[str, ...] = NUCLEI_CLASSES if kind == "3d-nuclei" else HE_CLASSES
    for i in range(int(n)):
        progress("demo data", i, int(n))
        name = f"{prefix}_{i:03d}"
        sample = make(shape, seed=np.random.SeedSequence([int(seed), i]), difficulty=difficulty, name=name)
        lab = sample.labels
        spatial = sample.axes.replace("C", "")
        meta = {
            "generator": f"pointseg demo-data --kind {kind}",
            "seed": int(seed),
            "index": i,
            "difficulty": difficulty,
            "classes": list(class_names),
        }
        images.append(write_tiff(out / f"{name}.tif", sample.image, axes=sample.axes, metadata=meta))
        labels.append(write_tiff(out / f"{name}.labels.tif", lab, axes=spatial, compression="zlib"))
        classes.append(write_tiff(out / f"{name}.classes.tif", sample.classes, axes=spatial, compression="zlib"))
        counts.append(int(lab.max()))
    with atomic_output(out / "classes.txt") as tmp:
        Path(tmp).write_text("".join(f"{c}\n" for c in class_names))
    progress("demo data", int(n), int(n))
    log.info("wrote %d %s samples to %s", n, kind, out)
    return DemoDataset(out, kind, tuple(images), tuple(labels), tuple(classes), class_names, tuple(counts))


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive instance ids 1..N (objects fully covered by neighbours leave gaps otherwise)."""
    if not labels.any():
        return labels
    ids = np.unique(labels)
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[ids] = np.arange(len(ids), dtype=np.uint16)
    return lut[labels]
