"""What every demo generator shares: the sample type and small geometry / noise helpers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from pointseg_cli.errors import ConfigError


@dataclass(frozen=True)
class DemoSample:
    """One generated image with its ground truth.

    Attributes
    ----------
    name : str
        File stem.
    image : np.ndarray
        ``(Z, Y, X)`` or ``(Y, X)`` uint16 fluorescence, or ``(Y, X, 3)`` uint8 RGB tile.
    labels : np.ndarray
        Instance ids, uint16, spatial shape of ``image``; 0 is background, ids consecutive 1..N.
    classes : np.ndarray
        Class id per pixel, uint8, 0 background, ``i + 1`` for ``class_names[i]``.
    class_names : tuple of str
        Object class names in id order.
    axes : str
        Axes of ``image``: ``'ZYX'``, ``'YX'`` or ``'YXC'``.
    voxel_size : tuple of float or None
        Physical size of a pixel/voxel per spatial axis in micrometres, when the generator
        models one (it is then written into the files).
    cell_of : np.ndarray or None
        ``(N + 1,)`` int: the cell (1..C) each instance id lies in (index 0 unused), for
        generators that model cells; the split is by cell.
    """

    name: str
    image: np.ndarray
    labels: np.ndarray
    classes: np.ndarray
    class_names: tuple[str, ...]
    axes: str
    voxel_size: tuple[float, ...] | None = None
    cell_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        spatial = self.image.shape[: len(self.labels.shape)]
        if self.labels.shape != spatial or self.classes.shape != spatial:
            raise ConfigError(
                f"labels {self.labels.shape} and classes {self.classes.shape} must match the image's "
                f"spatial shape {spatial}"
            )
        if self.voxel_size is not None and len(self.voxel_size) != len(spatial):
            raise ConfigError(f"voxel_size {self.voxel_size} must have one value per spatial axis of {spatial}")


def check_shape(shape: object, ndim: int, what: str) -> tuple[int, ...]:
    """``shape`` as a tuple of ``ndim`` ints, else :class:`ConfigError` naming ``what``."""
    shape = tuple(int(s) for s in shape)  # type: ignore[union-attr]
    if len(shape) != ndim:
        axes = "(Z, Y, X)" if ndim == 3 else "(Y, X)"
        raise ConfigError(f"{what} need a {axes} shape; got {shape}")
    return shape


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], scale: float | tuple[float, ...]) -> np.ndarray:
    """Zero-mean, unit-std smooth noise with correlation length ~``scale`` pixels (cheap: coarse + zoom).

    ``scale`` may be one value or one per axis (for anisotropic voxels).
    """
    scales = np.broadcast_to(np.asarray(scale, float), (len(shape),))
    factors = np.maximum(1.0, scales / 2.0)
    coarse = tuple(max(2, int(np.ceil(s / f)) + 1) for s, f in zip(shape, factors, strict=True))
    field = ndi.gaussian_filter(rng.standard_normal(coarse).astype(np.float32), sigma=1.0, mode="wrap")
    field = ndi.zoom(
        field, [s / c for s, c in zip(shape, coarse, strict=True)], order=1, grid_mode=True, mode="grid-wrap"
    )
    field = field[tuple(slice(0, s) for s in shape)]
    return (field - field.mean()) / (field.std() + 1e-6)


def random_rotation(rng: np.random.Generator, ndim: int) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix with sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def local_grid(center: np.ndarray, radius: float, shape: tuple[int, ...], scale: np.ndarray):
    """Bounding-box slices around ``center`` (voxels) and coordinates relative to it (physical units).

    ``radius`` is in physical units, ``scale`` the physical size of a voxel per axis. Returns
    ``(None, None)`` when the box lies outside the array.
    """
    lo = np.maximum(np.floor(center - radius / scale).astype(int), 0)
    hi = np.minimum(np.ceil(center + radius / scale).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None, None
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    axes = [(np.arange(a, b) - c) * s for a, b, c, s in zip(lo, hi, center, scale, strict=True)]
    return box, np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def paint(labels: np.ndarray, best: np.ndarray, box: tuple[slice, ...], dist: np.ndarray, label: int) -> np.ndarray:
    """Give voxels with normalised distance < 1 to ``label`` where it is the closest object.

    Overlapping objects share a clean boundary: a voxel goes to the object whose normalised
    distance there is smallest (``best`` keeps it). Returns the mask of voxels painted.
    """
    inside = (dist < 1.0) & (dist < best[box])
    labels[box][inside] = label
    best[box][inside] = dist[inside]
    return inside


def blob_2d(
    rng: np.random.Generator,
    center: np.ndarray,
    half_axes: tuple[float, float],
    angle: float,
    shape: tuple[int, int],
    *,
    spindle: bool = False,
    wobble_std: float = 0.05,
) -> tuple[tuple[slice, ...] | None, np.ndarray | None]:
    """Normalised distance (< 1 inside) of an irregular ellipse or a tapered spindle around ``center``."""
    box, grid = local_grid(center, max(half_axes) * 1.3 + 1, shape, np.ones(2))
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
    wobble = 1.0 + sum(rng.normal(0, wobble_std) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return box, (np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble).astype(np.float32)


def relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive instance ids 1..N (objects fully covered by neighbours leave gaps otherwise)."""
    if not labels.any():
        return labels
    ids = np.unique(labels)
    lut = np.zeros(int(ids.max()) + 1, np.uint16)
    lut[ids] = np.arange(len(ids), dtype=np.uint16)
    return lut[labels]


def camera(
    rng: np.random.Generator, expected: np.ndarray, *, read_noise: float, gain: float = 4.0, offset: float = 100.0
) -> np.ndarray:
    """Poisson shot noise on ``expected`` photons, Gaussian read noise, gain and offset into uint16."""
    counts = rng.poisson(np.clip(expected, 0, None)).astype(np.float32)
    counts += rng.normal(0, read_noise, size=expected.shape).astype(np.float32)
    return np.clip(offset + gain * counts, 0, 65535).astype(np.uint16)
