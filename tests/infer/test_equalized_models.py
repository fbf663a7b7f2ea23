"""A model trained with histogram equalisation: segment equalises its input from the metadata alone."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pointseg_cli.infer.predictors import TorchPredictor
from pointseg_cli.infer.segment import SegmentOptions, segment_array, segment_file
from pointseg_cli.io.images import read_image, write_tiff
from pointseg_cli.preprocess.equalize import equalize
from pointseg_cli.preprocess.normalize import Normalization, normalize_image

from .conftest import make_meta


def _threshold_net() -> nn.Module:
    """Class 1 where the (normalised) input is above 0.5: logits (0, 40 * (x - 0.5))."""
    conv = nn.Conv3d(1, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[1] = 40.0
        conv.bias[1] = -20.0
    return conv.eval()


def test_segment_applies_the_models_equalisation_with_whole_image_statistics(tmp_path) -> None:
    rng = np.random.default_rng(0)
    vol = rng.gamma(1.2, 200.0, size=(16, 48, 48)).astype(np.uint16)  # skewed: few bright voxels
    norm = {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True}
    tile = (8, 16, 16)
    plain = TorchPredictor(_threshold_net(), make_meta(3, norm=norm, tile=tile, classes=("a",)))
    equal = TorchPredictor(_threshold_net(), make_meta(3, norm={**norm, "equalize": True}, tile=tile, classes=("a",)))
    expect_plain = normalize_image(vol, Normalization()) > 0.5
    expect_equal = equalize(normalize_image(vol, Normalization())) > 0.5
    assert expect_plain.mean() < 0.3 and abs(expect_equal.mean() - 0.5) < 0.05  # the two differ clearly
    opts = SegmentOptions(overlap=0.25)
    got_plain = segment_array(vol, plain, options=opts).labels
    got_equal = segment_array(vol, equal, options=opts).labels
    assert (got_plain == expect_plain).mean() > 0.999
    assert (got_equal == expect_equal).mean() > 0.999
    # from a file, streamed slab by slab: the same labels
    write_tiff(tmp_path / "v.tif", vol, axes="ZYX")
    res = segment_file(tmp_path / "v.tif", tmp_path / "out", equal, options=opts)
    np.testing.assert_array_equal(read_image(res.labels), got_equal)
