"""Tile grids and blend weights for sliding-window inference (pure numpy, no I/O).

A :class:`TileGrid` covers a 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` spatial shape with tiles of a fixed
size that overlap by at least ``overlap`` of the tile along every axis. Axes shorter than a tile are
padded up to the model's size divisor, so a tile never extends past the padded shape. Tile starts
are spread evenly, so the real overlap is never less than requested.

Blend windows are separable (a product of 1D windows) and strictly positive, so the weight sum over
the grid is separable too and never zero; :meth:`TileGrid.weight_sum` uses this.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pointseg_cli.errors import ConfigError, check_choice

BLEND_MODES = ("gaussian", "linear", "constant")

#: Smallest blend weight relative to the window's maximum (weights are never zero).
MIN_WEIGHT = 1e-6


def round_up(value: int, divisor: int) -> int:
    """Smallest multiple of ``divisor`` that is ``>= value``."""
    return int(math.ceil(value / divisor) * divisor)


def _axis_starts(size: int, tile: int, overlap: float) -> tuple[int, ...]:
    if size <= tile:
        return (0,)
    step = max(1, int(tile * (1.0 - overlap)))
    n = int(math.ceil((size - tile) / step)) + 1
    # Evenly spread: the last tile ends exactly at ``size`` and every overlap is >= the requested one.
    starts = np.round(np.linspace(0, size - tile, n)).astype(int)
    return tuple(int(s) for s in starts)


@dataclass(frozen=True)
class TileGrid:
    """A tile grid over a spatial shape.

    Attributes
    ----------
    shape : tuple of int
        Spatial shape of the image, ``(Y, X)`` or ``(Z, Y, X)``.
    padded_shape : tuple of int
        Shape after padding short axes up to the tile size (``>= shape``).
    tile : tuple of int
        Tile size per axis (a multiple of ``divisor``).
    starts : tuple of tuple of int
        Tile start positions per axis, sorted; tiles are their Cartesian product.
    overlap : float
        Requested minimum overlap as a fraction of the tile.
    divisor : int
        The model's size divisor.
    """

    shape: tuple[int, ...]
    padded_shape: tuple[int, ...]
    tile: tuple[int, ...]
    starts: tuple[tuple[int, ...], ...]
    overlap: float
    divisor: int

    def __post_init__(self) -> None:
        n = len(self.shape)
        if n not in (2, 3):
            raise ConfigError(f"tile grid needs a 2D or 3D spatial shape; got {self.shape}")
        if not (len(self.padded_shape) == len(self.tile) == len(self.starts) == n):
            raise ConfigError(
                f"tile grid fields disagree in dimensions: shape {self.shape}, tile {self.tile}, "
                f"padded {self.padded_shape}"
            )
        for s, p, t, st in zip(self.shape, self.padded_shape, self.tile, self.starts, strict=True):
            if p < s or t > p or t % self.divisor or not st or st[-1] + t != p:
                raise ConfigError(
                    f"inconsistent tile grid: shape {self.shape}, padded {self.padded_shape}, tile {self.tile}"
                )

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_tiles(self) -> int:
        return int(np.prod([len(s) for s in self.starts]))

    @property
    def pad(self) -> tuple[int, ...]:
        """Padding added at the end of each axis."""
        return tuple(p - s for p, s in zip(self.padded_shape, self.shape, strict=True))

    def tiles(self) -> Iterator[tuple[slice, ...]]:
        """Yield every tile as slices into the padded shape, ordered along axis 0 first."""
        for corner in np.ndindex(*[len(s) for s in self.starts]):
            yield tuple(
                slice(self.starts[a][i], self.starts[a][i] + self.tile[a]) for a, i in enumerate(corner)
            )

    def inner_tiles(self) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
        """Tiles over axes 1.. only (the tiles of one slab along axis 0), as (grid index, slices)."""
        out = []
        for corner in np.ndindex(*[len(s) for s in self.starts[1:]]):
            slices = tuple(
                slice(self.starts[a + 1][i], self.starts[a + 1][i] + self.tile[a + 1]) for a, i in enumerate(corner)
            )
            out.append((tuple(int(i) for i in corner), slices))
        return out

    def min_overlap(self, axis: int) -> int:
        """Smallest overlap in voxels between neighbouring tiles along ``axis`` (0 for one tile)."""
        st = self.starts[axis]
        if len(st) < 2:
            return 0
        return int(min(self.tile[axis] - (b - a) for a, b in zip(st[:-1], st[1:], strict=True)))

    def axis_windows(self, axis: int, mode: str = "gaussian", *, edge_trim: int | None = None) -> list[np.ndarray]:
        """1D blend window of each tile along ``axis`` (float64, strictly positive).

        Tile edges inside the image (not on its border) get the minimum weight over their outer
        ``edge_trim`` voxels, so that the zero-padding artefacts a network makes at a tile's edge do
        not leak into the blend where a neighbouring tile has valid context. ``None`` uses a quarter
        of the overlap; 0 keeps the plain window.
        """
        base = blend_window_1d(self.tile[axis], mode)
        trim = self.min_overlap(axis) // 4 if edge_trim is None else int(edge_trim)
        if trim < 0:
            raise ConfigError(f"edge trim must be >= 0; got {trim}")
        trim = min(trim, self.min_overlap(axis) // 2)
        n = len(self.starts[axis])
        out = []
        for i in range(n):
            w = base.copy()
            if trim:
                if i > 0:
                    w[:trim] = MIN_WEIGHT
                if i < n - 1:
                    w[-trim:] = MIN_WEIGHT
            out.append(w)
        return out

    def weight_sum_1d(self, axis: int, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Sum of the tiles' 1D windows along ``axis``, shape ``(padded_shape[axis],)``.

        Windows and the grid are separable, so the full weight sum is the outer product of these.
        """
        total = np.zeros(self.padded_shape[axis], dtype=np.float64)
        for s, w in zip(self.starts[axis], windows, strict=True):
            total[s : s + self.tile[axis]] += w
        return total


def make_grid(
    shape: Sequence[int],
    tile: Sequence[int],
    *,
    overlap: float = 0.125,
    divisor: int = 1,
) -> TileGrid:
    """Build a tile grid over ``shape``.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape ``(Y, X)`` or ``(Z, Y, X)``.
    tile : sequence of int
        Requested tile size, same length as ``shape``; rounded up to a multiple of ``divisor``.
        Along an axis shorter than the tile, the tile shrinks to that axis rounded up to ``divisor``.
    overlap : float
        Minimum overlap between neighbouring tiles as a fraction of the tile, in ``[0, 1)``.
    divisor : int
        Every tile size must be a multiple of it (32 for the FPN, 8 for the U-Net).

    Returns
    -------
    TileGrid
    """
    shape = tuple(int(s) for s in shape)
    tile = tuple(int(t) for t in tile)
    if len(shape) not in (2, 3) or any(s < 1 for s in shape):
        raise ConfigError(f"image spatial shape must be 2D or 3D with positive sizes; got {shape}")
    if len(tile) != len(shape):
        raise ConfigError(f"tile must have {len(shape)} sizes for a {len(shape)}D image; got {tile}")
    if any(t < 1 for t in tile):
        raise ConfigError(f"tile sizes must be positive; got {tile}")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"overlap must be in [0, 1); got {overlap}")
    if divisor < 1:
        raise ConfigError(f"size divisor must be >= 1; got {divisor}")
    eff = tuple(min(round_up(t, divisor), round_up(s, divisor)) for s, t in zip(shape, tile, strict=True))
    padded = tuple(max(s, t) for s, t in zip(shape, eff, strict=True))
    starts = tuple(_axis_starts(p, t, overlap) for p, t in zip(padded, eff, strict=True))
    return TileGrid(shape=shape, padded_shape=padded, tile=eff, starts=starts, overlap=float(overlap),
                    divisor=int(divisor))


def blend_window_1d(size: int, mode: str = "gaussian") -> np.ndarray:
    """1D blend window of length ``size`` (float64, peak about 1, strictly positive).

    ``gaussian``: centred, sigma = size / 8. ``linear``: a triangle rising from the edges to the
    centre. ``constant``: ones.
    """
    check_choice("blend", mode, BLEND_MODES)
    if size < 1:
        raise ConfigError(f"blend window size must be >= 1; got {size}")
    i = np.arange(size, dtype=np.float64)
    centre = (size - 1) / 2.0
    if mode == "constant":
        w = np.ones(size)
    elif mode == "gaussian":
        sigma = size / 8.0
        w = np.exp(-((i - centre) ** 2) / (2.0 * sigma**2))
    else:
        w = np.minimum(i + 1, size - i) / math.ceil(size / 2)
    return np.maximum(w, MIN_WEIGHT)


def pad_to(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Pad the leading ``len(shape)`` axes of ``x`` at their end up to ``shape`` by reflection.

    Axes of length 1 are padded by repetition (reflection needs two samples).
    """
    extra = [max(0, int(t) - s) for t, s in zip(shape, x.shape, strict=False)]
    if not any(extra):
        return x
    widths = [(0, e) for e in extra] + [(0, 0)] * (x.ndim - len(extra))
    mode = "reflect" if all(s > 1 for s, e in zip(x.shape, extra, strict=False) if e) else "edge"
    return np.pad(x, widths, mode=mode)
