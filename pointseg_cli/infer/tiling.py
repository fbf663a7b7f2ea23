"""Tile grids and blend weights for sliding-window inference (pure numpy, no I/O).

A :class:`TileGrid` covers a 2D ``(Y, X)`` or 3D ``(Z, Y, X)`` spatial shape with tiles of a fixed
size that overlap by at least ``overlap`` of the tile along every axis. Axes shorter than a tile are
padded up to the model's size divisor, so a tile never extends past the padded shape. Tile starts
are spread evenly, so the real overlap is never less than requested.

An *aligned* grid (``make_grid(..., align=True)``, what ``segment`` uses) also puts every tile start
on a multiple of the divisor and pads every axis at its end to a multiple of it. A network with
``log2(divisor)`` poolings then sees each tile on the same pooling grid as one pass over the whole
image, so a tile's output equals the whole-image output wherever the tile edge is out of the
network's reach; unaligned tiles shift that grid and change the output everywhere in the tile.
:func:`grow_tile` enlarges a tile so that an image is covered with fewer recomputed voxels.

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


def overlap_voxels(tile: int, overlap: float) -> int:
    """The smallest overlap in voxels that ``overlap`` (a fraction) asks of tiles of size ``tile``."""
    return tile - int(tile * (1.0 - overlap))


def _axis_starts(size: int, tile: int, overlap: int, unit: int = 1) -> tuple[int, ...]:
    """Evenly spread starts on multiples of ``unit`` (``size - tile`` must be one), overlapping by
    at least ``overlap`` voxels; the last tile ends exactly at ``size``. When no step on that grid
    keeps the overlap (``tile - overlap < unit``) the starts are spread on every voxel instead."""
    if size <= tile:
        return (0,)
    if tile - overlap < unit:
        unit = 1
    step = max(1, (tile - overlap) // unit)
    span = (size - tile) // unit
    n = int(math.ceil(span / step)) + 1
    starts = np.round(np.linspace(0, span, n)).astype(int) * unit
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
    align: bool = False,
    min_overlap: Sequence[int] | None = None,
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
    align : bool
        Put tile starts on multiples of ``divisor`` and pad axes with more than one tile at their
        end to a multiple of it (see the module docstring).
    min_overlap : sequence of int, optional
        Minimum overlap per axis in voxels, instead of ``overlap`` times the tile (``overlap`` is
        then only recorded in the grid).

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
    unit = int(divisor) if align else 1
    padded = tuple(max(round_up(s, unit), t) for s, t in zip(shape, eff, strict=True))
    if min_overlap is None:
        voxels = tuple(overlap_voxels(t, overlap) for t in eff)
    else:
        voxels = tuple(int(v) for v in min_overlap)
        if len(voxels) != len(shape) or any(v < 0 for v in voxels):
            raise ConfigError(f"minimum overlap must be {len(shape)} voxel counts >= 0; got {tuple(min_overlap)}")
    starts = tuple(_axis_starts(p, t, v, unit) for p, t, v in zip(padded, eff, voxels, strict=True))
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


def grown_grid(
    shape: Sequence[int],
    tile: Sequence[int],
    *,
    overlap: float,
    divisor: int,
    max_voxels: int,
    max_slab_voxels: int | None = None,
) -> TileGrid:
    """An aligned grid of tiles at least as large as ``tile`` that computes the fewest voxels.

    Overlapping tiles compute some voxels more than once; fewer, larger tiles compute fewer. The
    overlap in voxels stays the one ``overlap`` asks of ``tile`` (how far a tile edge disturbs the
    network's output does not grow with the tile). Per axis every multiple of ``divisor`` from the
    tile (as :func:`make_grid` rounds it) up to the axis is a candidate, and for each number of
    tiles along the axis the smallest size is kept. Among the combinations with at most
    ``max_voxels`` voxels in a tile and at most ``max_slab_voxels`` in one slab (the tile's depth
    along axis 0 times the padded size of the other axes: the rows the streaming engine holds), the
    one that computes the fewest voxels wins (ties: the smaller tile). The grid of ``tile`` itself
    is the fallback when nothing larger fits.

    Parameters
    ----------
    shape : sequence of int
        Spatial shape of the image.
    tile : sequence of int
        The smallest tile (the model's).
    overlap : float
        Minimum overlap as a fraction of ``tile``.
    divisor : int
        The model's size divisor.
    max_voxels : int
        Largest tile, in voxels.
    max_slab_voxels : int, optional
        Largest slab, in voxels (no limit when None).

    Returns
    -------
    TileGrid
        Aligned (see :func:`make_grid`), with the overlap in voxels of ``tile``.
    """
    base = make_grid(shape, tile, overlap=overlap, divisor=divisor, align=True)
    keep = tuple(overlap_voxels(t, overlap) for t in base.tile)
    base_vox = int(np.prod(base.tile))
    limit = max(int(max_voxels), base_vox)
    axes = []  # per axis: (size, tiles along the axis, padded length), sizes ascending
    for s, t, v in zip(base.shape, base.tile, keep, strict=True):
        top = round_up(s, divisor)
        most = min(top, t * max(1, limit // base_vox))
        seen: dict[int, int] = {}
        for size in range(t, max(t, most) + 1, divisor):
            seen.setdefault(len(_axis_starts(max(top, size), size, v, divisor)), size)
        axes.append(sorted((size, n, max(top, size)) for n, size in seen.items()))

    def cost(combo: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
        return int(np.prod([c[0] * c[1] for c in combo])), int(np.prod([c[0] for c in combo]))

    best = tuple(ax[0] for ax in axes)
    for combo in _combinations(axes, limit):
        slab = combo[0][0] * int(np.prod([c[2] for c in combo[1:]]))
        if max_slab_voxels is not None and combo[0][0] > base.tile[0] and slab > max_slab_voxels:
            continue
        if cost(combo) < cost(best):
            best = combo
    return make_grid(shape, tuple(c[0] for c in best), overlap=overlap, divisor=divisor, align=True,
                     min_overlap=keep)


def _combinations(axes: list[list[tuple[int, int, int]]], limit: int) -> Iterator[tuple[tuple[int, int, int], ...]]:
    """Every combination of per-axis candidates whose tile has at most ``limit`` voxels."""
    if not axes:
        yield ()
        return
    rest_min = int(np.prod([ax[0][0] for ax in axes[1:]]))
    for cand in axes[0]:
        if cand[0] * rest_min > limit:
            break  # sizes ascend
        for tail in _combinations(axes[1:], limit // cand[0]):
            yield (cand, *tail)
