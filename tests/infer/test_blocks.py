"""Blocks on the global tile grid equal the whole-image result voxel for voxel."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tifffile
import torch

from pointseg_cli.errors import ConfigError, ModelError
from pointseg_cli.infer.blocks import covering_tiles, region_extent, segment_region, whole_grid
from pointseg_cli.infer.predictors import TorchPredictor
from pointseg_cli.infer.segment import SegmentOptions, input_statistics, segment_array, segment_file
from pointseg_cli.infer.stream import run_stream
from pointseg_cli.io.images import open_image
from pointseg_cli.model.metadata import ModelMetadata
from tests.infer.conftest import NONE_NORM, make_meta, tiny_net

CASES = [
    # shape, tile, block, options
    ((37, 70, 90), (16, 32, 32), (13, 29, 41), SegmentOptions()),
    ((37, 70, 90), (16, 32, 32), (20, 70, 17), SegmentOptions(blend="linear", edge_trim=0, batch_size=3)),
    ((5, 70, 50), (16, 32, 32), (5, 24, 24), SegmentOptions(overlap=0.5)),  # Z shorter than the tile: padded
    ((150, 170), (64, 64), (50, 61), SegmentOptions()),
    ((150, 40), (64, 64), (33, 40), SegmentOptions(blend="constant")),  # X padded
]


def _blocks(shape, block):
    for corner in itertools.product(*[range(0, s, b) for s, b in zip(shape, block, strict=True)]):
        yield tuple(slice(c, min(c + b, s)) for c, b, s in zip(corner, block, shape, strict=True))


@pytest.mark.parametrize("shape, tile, block, options", CASES)
def test_blocks_equal_whole_image(rng, shape, tile, block, options):
    ndim = len(shape)
    pred = TorchPredictor(tiny_net(ndim, seed=3), make_meta(ndim, tile=tile))
    image = rng.normal(size=shape).astype(np.float32)
    whole = segment_array(image, pred, options=options).labels
    stats = input_statistics(image, pred, options=options).stats
    grid = whole_grid(shape, pred, options)
    out = np.full(shape, 255, dtype=np.uint8)
    for region in _blocks(shape, block):
        out[region] = segment_region(image, pred, grid, region, stats=stats, options=options).labels
    assert len(set(whole.ravel().tolist())) == 3  # all classes occur: the comparison means something
    np.testing.assert_array_equal(out, whole)


def test_block_probabilities_equal_the_streamed_file(rng, tmp_path):
    pred = TorchPredictor(tiny_net(3, seed=1), make_meta(3, tile=(16, 32, 32)))
    image = (rng.random((30, 60, 50)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "v.tif", image)
    options = SegmentOptions(probabilities="tif")
    res = segment_file(tmp_path / "v.tif", tmp_path / "out", pred, options=options)
    probs = tifffile.imread(res.probabilities)
    lazy = open_image(tmp_path / "v.tif")
    stats = input_statistics(lazy, pred, options=options).stats
    grid = whole_grid(lazy.info.spatial_shape, pred, options)
    for region in _blocks((30, 60, 50), (11, 60, 23)):
        r = segment_region(lazy, pred, grid, region, stats=stats, options=options, probabilities=True)
        np.testing.assert_array_equal(r.labels, tifffile.imread(res.labels)[region])
        np.testing.assert_array_equal(r.probabilities, probs[(slice(None), *region)])


class _Heads(torch.nn.Module):
    """Logits and a centre map from one tiny net (not pointwise, so the blend matters)."""

    def __init__(self, ndim: int) -> None:
        super().__init__()
        self.net = tiny_net(ndim, n_out=3, seed=5)

    def forward(self, x):
        return self.net(x)[:, :2]

    def forward_heads(self, x):
        y = self.net(x)
        return {"logits": y[:, :2], "centers": torch.sigmoid(y[:, 2:])}


@pytest.mark.parametrize("shape, tile, block", [((30, 60, 50), (16, 32, 32), (11, 60, 23)),
                                                ((90, 70), (32, 32), (40, 33))])
def test_block_centres_equal_the_streamed_centre_map(rng, shape, tile, block):
    ndim = len(shape)
    meta = ModelMetadata(classes=("a",), ndim=ndim, channels=1, normalization=NONE_NORM, tile=tile, divisor=8,
                         outputs=("logits", "centers"))
    pred = TorchPredictor(_Heads(ndim), meta)
    image = rng.random(shape, dtype=np.float32)  # in [0, 1): the model's normalisation leaves it as it is
    # One tile per model call: PyTorch's CPU convolutions may differ in the last bit between batch
    # sizes (onnxruntime's do not), and this test is about the blend's arithmetic.
    options = SegmentOptions(batch_size=1)
    grid = whole_grid(shape, pred, options)
    labels, centres = np.zeros(shape, np.uint8), np.zeros(shape, np.float32)

    def sink(rows) -> None:
        labels[rows.start : rows.stop], centres[rows.start : rows.stop] = rows.labels, rows.centers

    run_stream(lambda a, b: image[a:b, ..., None], lambda x: x, pred, grid, sink, outputs=("labels", "centers"),
               batch_size=1)
    stats = input_statistics(image, pred, options=options).stats
    assert len(np.unique(labels)) == 2 and np.ptp(centres) > 0.1
    for region in _blocks(shape, block):
        r = segment_region(image, pred, grid, region, stats=stats, options=options, centers=True)
        np.testing.assert_array_equal(r.labels, labels[region])
        np.testing.assert_array_equal(r.centers, centres[region])


def test_centres_need_a_centre_output(rng):
    pred = TorchPredictor(tiny_net(2), make_meta(2, tile=(64, 64)))
    image = rng.normal(size=(70, 70)).astype(np.float32)
    stats = input_statistics(image, pred).stats
    with pytest.raises(ModelError, match="no centre output"):
        segment_region(image, pred, whole_grid(image.shape, pred), (slice(0, 10), slice(0, 10)), stats=stats,
                       centers=True)


def test_covering_tiles_and_extent():
    pred = TorchPredictor(tiny_net(2), make_meta(2, tile=(64, 64)))
    grid = whole_grid((150, 170), pred, SegmentOptions(tile=(64, 64)))
    assert grid.starts[0] == (0, 48, 88)  # on multiples of the divisor; 150 padded to 152
    region = (slice(60, 90), slice(0, 10))
    assert covering_tiles(grid, region)[0] == (0, 1, 2)  # 60..63 in tile 0, 88..89 in tile 2
    assert region_extent(grid, region)[0] == slice(0, 152)
    assert covering_tiles(grid, (slice(0, 48), slice(0, 10)))[0] == (0,)


@pytest.mark.parametrize("region", [(slice(0, 10),), (slice(5, 5), slice(0, 10)), (slice(0, 10, 2), slice(0, 10))])
def test_bad_region_is_a_config_error(region):
    pred = TorchPredictor(tiny_net(2), make_meta(2, tile=(64, 64)))
    with pytest.raises(ConfigError, match="region"):
        covering_tiles(whole_grid((150, 170), pred), region)
