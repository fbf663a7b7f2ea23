from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.infer.tiling import blend_window_1d, grown_grid, make_grid, overlap_voxels, pad_to, round_up

# shape, tile, overlap, divisor -> expected tile, padded shape, starts per axis
GRID_CASES = [
    # exact fit: one tile
    ((64, 64), (64, 64), 0.25, 8, (64, 64), (64, 64), ((0,), (0,))),
    # 100 px with tile 64, step 48: 2 tiles, evenly spread, last ends at 100
    ((100, 64), (64, 64), 0.25, 8, (64, 64), (100, 64), ((0, 36), (0,))),
    # 200 px: ceil(136/48)+1 = 4 tiles
    ((200, 64), (64, 64), 0.25, 8, (64, 64), (200, 64), ((0, 45, 91, 136), (0,))),
    # smaller than a tile: tile shrinks to the size rounded up to the divisor, image padded
    ((30, 50), (64, 64), 0.25, 8, (32, 56), (32, 56), ((0,), (0,))),
    # divisor 32: tile rounded up from 100 to 128
    ((300, 300), (100, 100), 0.25, 32, (128, 128), (300, 300), ((0, 86, 172), (0, 86, 172))),
    # no overlap: step = tile
    ((128, 64), (64, 64), 0.0, 1, (64, 64), (128, 64), ((0, 64), (0,))),
    # half overlap
    ((128, 64), (64, 64), 0.5, 1, (64, 64), (128, 64), ((0, 32, 64), (0,))),
    # 3D, shallow volume padded in Z
    ((5, 70, 40), (16, 64, 64), 0.25, 8, (8, 64, 40), (8, 70, 40), ((0,), (0, 6), (0,))),
    # 3D, deep
    ((40, 64, 64), (16, 64, 64), 0.25, 8, (16, 64, 64), (40, 64, 64), ((0, 12, 24), (0,), (0,))),
    # a single pixel row
    ((1, 17), (8, 8), 0.25, 1, (1, 8), (1, 17), ((0,), (0, 4, 9))),
]


@pytest.mark.parametrize("shape, tile, overlap, divisor, exp_tile, exp_padded, exp_starts", GRID_CASES)
def test_grid_table(shape, tile, overlap, divisor, exp_tile, exp_padded, exp_starts):
    g = make_grid(shape, tile, overlap=overlap, divisor=divisor)
    assert g.tile == exp_tile
    assert g.padded_shape == exp_padded
    assert g.starts == exp_starts
    assert g.n_tiles == int(np.prod([len(s) for s in exp_starts]))
    assert all(t % divisor == 0 for t in g.tile)


@pytest.mark.parametrize("shape, tile, overlap, divisor, exp_tile, exp_padded, exp_starts", GRID_CASES)
def test_grid_covers_everything_with_requested_overlap(shape, tile, overlap, divisor, exp_tile, exp_padded, exp_starts):
    g = make_grid(shape, tile, overlap=overlap, divisor=divisor)
    cover = np.zeros(g.padded_shape, dtype=int)
    for sl in g.tiles():
        assert all(s.stop <= p for s, p in zip(sl, g.padded_shape, strict=True))
        cover[sl] += 1
    assert cover.min() >= 1
    for axis in range(g.ndim):
        if len(g.starts[axis]) > 1:
            assert g.min_overlap(axis) >= int(overlap * g.tile[axis]) - 1


BAD_GRIDS = [
    ((64,), (64,), 0.25, 8, "2D or 3D"),
    ((64, 64), (64, 64, 64), 0.25, 8, "tile must have 2 sizes"),
    ((64, 64), (0, 64), 0.25, 8, "positive"),
    ((64, 64), (64, 64), 1.0, 8, "overlap must be in [0, 1)"),
    ((64, 64), (64, 64), -0.1, 8, "overlap must be in [0, 1)"),
    ((0, 64), (64, 64), 0.25, 8, "positive sizes"),
    ((64, 64), (64, 64), 0.25, 0, "divisor"),
]


@pytest.mark.parametrize("shape, tile, overlap, divisor, message", BAD_GRIDS)
def test_bad_grids_name_the_problem(shape, tile, overlap, divisor, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        make_grid(shape, tile, overlap=overlap, divisor=divisor)


WINDOW_CASES = [
    # mode, size, value at the edge (relative to the max), symmetric, all equal
    ("gaussian", 64, np.exp(-((31.5 / 8) ** 2) / 2), True, False),
    ("gaussian", 9, np.exp(-((4 / (9 / 8)) ** 2) / 2), True, False),
    ("linear", 8, 1 / 4, True, False),
    ("linear", 7, 1 / 4, True, False),
    ("constant", 16, 1.0, True, True),
    ("gaussian", 1, 1.0, True, True),
]


@pytest.mark.parametrize("mode, size, edge, symmetric, flat", WINDOW_CASES)
def test_blend_windows(mode, size, edge, symmetric, flat):
    w = blend_window_1d(size, mode)
    assert w.shape == (size,)
    assert w.max() == pytest.approx(1.0, rel=1e-2)
    assert w.min() > 0  # no zero weights, ever
    assert w[0] == pytest.approx(max(edge, 1e-6), rel=1e-6)
    if symmetric:
        np.testing.assert_allclose(w, w[::-1])
    assert (np.ptp(w) == 0) == flat


def test_gaussian_sigma_is_an_eighth_of_the_tile():
    w = blend_window_1d(80, "gaussian")
    centre = 39.5
    i = 60
    assert w[i] == pytest.approx(np.exp(-((i - centre) ** 2) / (2 * 10.0**2)))


def test_unknown_blend_lists_choices():
    with pytest.raises(ConfigError, match="gaussian, linear, constant"):
        blend_window_1d(8, "cosine")


def test_edge_trim_only_on_inner_edges_and_weight_sum_positive():
    g = make_grid((200, 8), (64, 8), overlap=0.25)
    wins = g.axis_windows(0, "gaussian")
    trim = g.min_overlap(0) // 4
    assert trim > 0
    first, last = wins[0], wins[-1]
    assert first[0] == pytest.approx(blend_window_1d(64)[0])  # image border: untouched
    assert np.all(first[-trim:] == 1e-6) and np.all(last[:trim] == 1e-6)
    assert last[-1] == pytest.approx(blend_window_1d(64)[-1])
    total = g.weight_sum_1d(0, wins)
    assert total.shape == (200,) and total.min() > 1e-4
    # inside the trimmed band of tile 0, the neighbouring tile carries (almost) all the weight
    end0 = g.starts[0][0] + 64
    band = slice(end0 - trim, end0)
    share = first[-trim:] / total[band]
    assert share.max() < 1e-4
    plain = g.axis_windows(0, "gaussian", edge_trim=0)
    np.testing.assert_allclose(plain[1], blend_window_1d(64))


@pytest.mark.parametrize(
    "shape, target, expected",
    [((3, 4), (5, 4), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [4, 5, 6, 7], [0, 1, 2, 3]]),
     ((1, 3), (2, 3), [[0, 1, 2], [0, 1, 2]])],
)
def test_pad_to_reflects_and_repeats_singletons(shape, target, expected):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    np.testing.assert_array_equal(pad_to(x, target), expected)


def test_round_up():
    assert [round_up(v, 8) for v in (1, 8, 9, 16)] == [8, 8, 16, 16]


# --- aligned grids (what segment uses) and grown tiles --------------------------------------------------

# shape, tile, overlap, divisor -> padded shape, starts per axis
ALIGNED_CASES = [
    # 150 padded to 152; starts on multiples of 8, overlap >= 16 (0.25 of 64)
    ((150, 64), (64, 64), 0.25, 8, (152, 64), ((0, 48, 88), (0,))),
    # a multiple of the divisor already: no padding
    ((200, 64), (64, 64), 0.25, 8, (200, 64), ((0, 48, 88, 136), (0,))),
    # one tile along an axis: padded to the tile as before
    ((30, 50), (64, 64), 0.25, 8, (32, 56), ((0,), (0,))),
    # divisor 1: the plain grid
    ((200, 64), (64, 64), 0.25, 1, (200, 64), ((0, 45, 91, 136), (0,))),
    ((40, 70, 64), (16, 64, 64), 0.125, 8, (40, 72, 64), ((0, 8, 16, 24), (0, 8), (0,))),
    # a tile of one divisor cannot overlap on the divisor grid: spread on every voxel instead
    ((24, 64), (8, 64), 0.125, 8, (24, 64), ((0, 5, 11, 16), (0,))),
]


@pytest.mark.parametrize("shape, tile, overlap, divisor, exp_padded, exp_starts", ALIGNED_CASES)
def test_aligned_grid_starts_on_the_divisor(shape, tile, overlap, divisor, exp_padded, exp_starts):
    g = make_grid(shape, tile, overlap=overlap, divisor=divisor, align=True)
    assert g.padded_shape == exp_padded and g.starts == exp_starts
    for axis in range(g.ndim):
        if len(g.starts[axis]) > 1:
            assert g.min_overlap(axis) >= overlap_voxels(g.tile[axis], overlap)


def test_min_overlap_in_voxels_replaces_the_fraction():
    g = make_grid((300, 64), (96, 64), overlap=0.5, divisor=8, align=True, min_overlap=(8, 0))
    assert g.starts[0] == (0, 72, 136, 208) and g.min_overlap(0) == 24 and g.overlap == 0.5
    assert len(make_grid((300, 64), (96, 64), overlap=0.5, divisor=8, align=True).starts[0]) == 6
    with pytest.raises(ConfigError, match="minimum overlap"):
        make_grid((300, 64), (96, 64), min_overlap=(8,))


GROW_CASES = [
    # shape, tile, max voxels, max slab voxels -> tile
    ((32, 256, 256), (32, 128, 128), 4 * 32 * 128 * 128, None, (32, 256, 256)),  # the whole volume in one tile
    ((64, 512, 512), (32, 64, 64), 4 * 32 * 64 * 64, None, (64, 80, 80)),
    ((64, 512, 512), (32, 64, 64), 4 * 32 * 64 * 64, 32 * 512 * 512, (32, 80, 176)),  # Z may not grow
    ((64, 512, 512), (32, 64, 64), 1, None, (32, 64, 64)),  # nothing larger fits: the tile itself
    ((100, 130), (128, 128), 10**6, None, (104, 136)),  # shorter than the tile: as make_grid shrinks it
]


@pytest.mark.parametrize("shape, tile, max_voxels, max_slab, expected", GROW_CASES)
def test_grown_grid_computes_fewer_voxels_within_its_limits(shape, tile, max_voxels, max_slab, expected):
    g = grown_grid(shape, tile, overlap=0.125, divisor=8, max_voxels=max_voxels, max_slab_voxels=max_slab)
    base = make_grid(shape, tile, overlap=0.125, divisor=8, align=True)
    assert g.tile == expected
    assert g.n_tiles * np.prod(g.tile) <= base.n_tiles * np.prod(base.tile)
    assert np.prod(g.tile) <= max(max_voxels, np.prod(base.tile))
    if max_slab is not None and g.tile[0] > base.tile[0]:
        assert g.tile[0] * np.prod(g.padded_shape[1:]) <= max_slab
    for axis in range(g.ndim):  # the overlap in voxels of the small tile is kept
        if len(g.starts[axis]) > 1:
            assert g.min_overlap(axis) >= overlap_voxels(base.tile[axis], 0.125)
    assert all(s % 8 == 0 for st in g.starts for s in st)
