"""``2d-he``: H&E-like RGB tiles with three nucleus classes.

RGB uint8 ``(Y, X, 3)`` tiles rendered through a Beer-Lambert model from hematoxylin and eosin
concentration maps: fibrous pink stroma with pale gaps and three nucleus classes (``epithelial``:
large, pale, vesicular, in nests with cytoplasm; ``fibroblast``: elongated spindles along the
fibres; ``lymphocyte``: small, round, dark). The stain vectors and intensities are perturbed per
tile. Ground truth: instance ids and class ids per pixel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.demo._common import DemoSample, blob_2d, check_shape, paint, relabel, smooth_noise
from pointseg_cli.demo.nuclei3d import DIFFICULTIES
from pointseg_cli.errors import check_choice

log = logging.getLogger(__name__)

#: Class names of the H&E tiles, in id order (ids 1..3; sorted, as ``annotate-import`` would order them).
HE_CLASSES = ("epithelial", "fibroblast", "lymphocyte")
DEFAULT_SHAPE = (256, 256)
MIN_SHAPE = (64, 64)

# Per difficulty: 2D (nuclei per 256x256, stain jitter, blur sigma, noise std, class contrast factor)
_HE_LEVELS = {
    "easy": (35, 0.04, 0.5, 2.0, 1.0),
    "medium": (55, 0.08, 0.8, 4.0, 0.85),
    "hard": (80, 0.12, 1.1, 7.0, 0.7),
}
# Ruifrok & Johnston optical-density vectors of hematoxylin and eosin (R, G, B).
_H_VEC = np.array([0.650, 0.704, 0.286])
_E_VEC = np.array([0.072, 0.990, 0.105])



def _fibres(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Stroma fibre texture in about [-1, 1]: streaky noise along a dominant direction (radians)."""
    angle = float(rng.uniform(0, np.pi))
    side = int(np.ceil(np.hypot(*shape))) + 4
    streaks = ndi.gaussian_filter(rng.standard_normal((side, side)).astype(np.float32), sigma=(0.7, 12.0))
    streaks = ndi.rotate(streaks, np.degrees(angle), reshape=False, order=1, mode="reflect")
    oy, ox = (side - shape[0]) // 2, (side - shape[1]) // 2
    streaks = streaks[oy : oy + shape[0], ox : ox + shape[1]]
    return streaks / (np.abs(streaks).max() + 1e-6), angle


def make_he_tile(
    shape: Sequence[int] = DEFAULT_SHAPE,
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
    shape = check_shape(shape, 2, "2D H&E tiles")
    rng = np.random.default_rng(seed)
    density, stain_jitter, blur, noise_std, contrast = _HE_LEVELS[difficulty]
    area = shape[0] * shape[1] / 256.0**2
    fibres, fibre_angle = _fibres(rng, shape)

    # Stain concentration maps: eosin-rich fibrous stroma with pale gaps, faint hematoxylin.
    eosin = 0.42 + 0.25 * fibres + 0.05 * smooth_noise(rng, shape, 20.0)
    gaps = smooth_noise(rng, shape, 24.0) > rng.uniform(1.2, 2.2)
    eosin = np.where(gaps, 0.04, eosin)
    hema = 0.04 + 0.02 * smooth_noise(rng, shape, 8.0)

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
    texture = smooth_noise(rng, shape, 1.5)
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
                box, dist = blob_2d(rng, centre, axes_r, angle, shape, spindle=cls_id == 2)
                if box is None:
                    continue
                inside = dist < 1.0
                overlap = (labels[box][inside] > 0).mean() if inside.any() else 1.0
                if inside.sum() >= 6 and overlap <= (0.08 if cls_id == 1 else 0.0):
                    break
            else:
                continue
            painted = paint(labels, best, box, dist, next_id)
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
    return DemoSample(name, image, relabel(labels), classes, HE_CLASSES, "YXC")


