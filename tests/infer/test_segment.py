from __future__ import annotations

import gc
import tracemalloc

import numpy as np
import pytest
import tifffile
import torch

from pointseg_cli.errors import ConfigError, ImageFormatError
from pointseg_cli.infer.predictors import TorchPredictor
from pointseg_cli.infer.segment import SegmentOptions, segment_array, segment_block, segment_file
from pointseg_cli.infer.stream import run_stream
from pointseg_cli.infer.tiling import make_grid
from pointseg_cli.io.images import read_image, read_info
from pointseg_cli.preprocess.normalize import NormStats
from tests.infer.conftest import FailingPredictor, make_meta, tiny_net, untiled, untiled_padded

SEAM_CASES = [
    # ndim, shape, tile, overlap, blend
    (2, (150, 170), (64, 64), 0.25, "gaussian"),
    (2, (150, 170), (64, 64), 0.5, "linear"),
    (2, (130, 97), (48, 48), 0.25, "constant"),
    (3, (37, 50, 45), (16, 32, 32), 0.5, "gaussian"),
    (3, (40, 64, 72), (16, 32, 32), 0.5, "gaussian"),
]


@pytest.mark.parametrize("ndim, shape, tile, overlap, blend", SEAM_CASES)
def test_tiled_equals_untiled_when_receptive_field_is_smaller_than_overlap(rng, ndim, shape, tile, overlap, blend):
    """Exact (up to float rounding) when the net's receptive-field radius (2) <= edge trim (overlap / 4)."""
    net = tiny_net(ndim)
    pred = TorchPredictor(net, make_meta(ndim, tile=tile))
    image = rng.random(shape).astype(np.float32)
    res = segment_array(image, pred, options=SegmentOptions(tile=tile, overlap=overlap, blend=blend),
                        return_logits=True)
    # The image is padded at its end to a multiple of the divisor, like one pass of a real network's
    # would be: the whole image must match that pass, borders included.
    full = untiled_padded(net, image)
    np.testing.assert_allclose(res.logits, full, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(res.labels, np.argmax(full, axis=0))


def _pooling_net() -> torch.nn.Module:
    """A network with three 2x poolings (size divisor 8): its output depends on the 8-pixel grid."""
    torch.manual_seed(5)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(), torch.nn.MaxPool2d(8),
        torch.nn.Conv2d(4, 3, 1), torch.nn.Upsample(scale_factor=8),
    ).eval()


def test_tiles_on_the_divisor_grid_equal_one_pass_of_a_pooling_network(rng):
    """Tile starts on multiples of the divisor keep the pooling grid of the whole image."""
    net = _pooling_net()
    pred = TorchPredictor(net, make_meta(2, tile=(64, 64)))
    image = rng.random((150, 170)).astype(np.float32)
    opts = SegmentOptions(tile=(64, 64), overlap=0.5, edge_trim=12)  # trim beyond the reach (8 + 1) of an edge
    res = segment_array(image, pred, options=opts, return_logits=True)
    full = untiled_padded(net, image)
    np.testing.assert_allclose(res.logits, full, atol=1e-4, rtol=0)
    # the same tiles spread evenly but off the divisor grid: wrong far from any tile edge
    grid = make_grid(image.shape, (64, 64), overlap=0.5, divisor=8)
    assert any(s % 8 for st in grid.starts for s in st)
    out = np.zeros((3, *image.shape), np.float32)

    def sink(rows):
        out[:, rows.start : rows.stop] = rows.logits

    run_stream(lambda lo, hi: image[lo:hi, :, None], lambda raw: raw.astype(np.float32), pred, grid, sink,
               edge_trim=12, outputs=("labels", "logits"))
    assert np.abs(out - full).max() > 1e-2


def test_without_edge_trim_plain_gaussian_still_close(rng):
    """The untrimmed window blends in tile-edge artefacts at a weight of ~exp(-8): close, not exact."""
    net = tiny_net(2)
    pred = TorchPredictor(net, make_meta(2))
    image = rng.random((150, 170)).astype(np.float32)
    res = segment_array(image, pred, options=SegmentOptions(tile=(64, 64), overlap=0.25, edge_trim=0),
                        return_logits=True)
    err = np.abs(res.logits - untiled_padded(net, image)).max()
    assert 1e-6 < err < 1e-2


def test_small_image_is_padded_and_cropped_back(rng):
    net = tiny_net(3)
    pred = TorchPredictor(net, make_meta(3, tile=(16, 32, 32)))
    image = rng.random((5, 20, 70)).astype(np.float32)
    res = segment_array(image, pred, return_logits=True)
    assert res.labels.shape == (5, 20, 70) and res.logits.shape == (3, 5, 20, 70)
    full = untiled(net, image)
    # away from the padded ends (reflection there differs from the untiled zero padding)
    np.testing.assert_allclose(res.logits[:, :2, :17, :67], full[:, :2, :17, :67], atol=1e-4)
    # everywhere, against one pass over the image padded the same way
    np.testing.assert_allclose(res.logits, untiled_padded(net, image), atol=1e-4)


def test_rgb_image_channels_last(rng):
    net = tiny_net(2, channels=3)
    pred = TorchPredictor(net, make_meta(2, channels=3))
    image = rng.random((90, 80, 3)).astype(np.float32)
    res = segment_array(image, pred, return_logits=True)
    np.testing.assert_allclose(res.logits, untiled_padded(net, image, channels=3), atol=1e-4)


def test_batch_size_does_not_change_the_result(rng, pred2d):
    image = rng.random((150, 170)).astype(np.float32)
    for tile in (None, (64, 64)):  # the model's tile grown, and a given tile
        a = segment_array(image, pred2d, options=SegmentOptions(tile=tile, batch_size=1), return_logits=True).logits
        b = segment_array(image, pred2d, options=SegmentOptions(tile=tile, batch_size=7), return_logits=True).logits
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_segment_block_returns_the_core_of_the_whole_result(rng, pred3d):
    image = rng.random((40, 64, 72)).astype(np.float32)
    stats = NormStats(lo=np.zeros(1, np.float32), hi=np.ones(1, np.float32))
    opts = SegmentOptions(overlap=0.5)
    whole = segment_array(image, pred3d, stats=stats, options=opts).labels
    block = image[10:34, 8:56, :]
    core = segment_block(block, pred3d, halo=(4, 4, 0), stats=stats, options=opts)
    np.testing.assert_array_equal(core, whole[14:30, 12:52, :])


def test_segment_file_writes_labels_probabilities_preview(tmp_path, rng, pred3d):
    src = tmp_path / "vol.tif"
    image = rng.random((21, 40, 50)).astype(np.float32)
    tifffile.imwrite(src, image)
    out = tmp_path / "out"
    opts = SegmentOptions(tile=(16, 32, 32), probabilities="tif", preview=True)
    res = segment_file(src, out, pred3d, options=opts)
    assert sorted(p.name for p in out.iterdir()) == ["vol.labels.tif", "vol.preview.png", "vol.probabilities.tif"]
    info = read_info(res.labels)
    assert info.axes == "ZYX" and info.shape == (21, 40, 50) and info.dtype == np.uint8
    expected = segment_array(image, pred3d, options=opts, return_logits=True)
    np.testing.assert_array_equal(read_image(res.labels), expected.labels)
    probs = tifffile.imread(res.probabilities)
    assert probs.shape == (3, 21, 40, 50) and probs.dtype == np.float16
    np.testing.assert_allclose(probs.astype(np.float32).sum(axis=0), 1.0, atol=5e-3)
    assert res.voxels == 21 * 40 * 50 and res.tiles > 1 and res.provider == "torch-cpu"
    preview = read_image(res.preview)
    # orthogonal views: XY (40x50) with YZ (Z=21 to the right) and XZ (below), 4 px apart
    assert preview.dtype == np.uint8 and preview.shape == (40 + 4 + 21, 50 + 4 + 21, 3)


def test_probabilities_as_zarr(tmp_path, rng, pred2d):
    import zarr

    src = tmp_path / "img.tif"
    tifffile.imwrite(src, (rng.random((70, 90)) * 255).astype(np.uint8))
    res = segment_file(src, tmp_path, pred2d, options=SegmentOptions(probabilities="zarr"))
    from pointseg_cli.io.ome_zarr import ngff_version

    group = zarr.open_group(str(res.probabilities), mode="r")
    assert group["0"].shape == (3, 70, 90) and group["0"].dtype == np.float16
    attrs = dict(group.attrs)
    ome = attrs["ome"] if ngff_version() == "0.5" else attrs
    assert [a["name"] for a in ome["multiscales"][0]["axes"]] == ["c", "y", "x"]
    assert attrs["pointseg"]["model"]["name"] and attrs["pointseg"]["input"] == "img.tif"


def test_axes_override_reads_channels_first_volume(tmp_path, rng, pred3d):
    src = tmp_path / "czyx.tif"
    tifffile.imwrite(src, rng.random((1, 9, 30, 40)).astype(np.float32))
    res = segment_file(src, tmp_path, pred3d, axes="CZYX")
    assert read_info(res.labels).shape == (9, 30, 40)


def test_model_and_image_must_agree(tmp_path, rng, pred3d, pred2d):
    src = tmp_path / "flat.tif"
    tifffile.imwrite(src, rng.random((30, 40)).astype(np.float32))
    with pytest.raises(ImageFormatError, match=r"model expects 3D images but 'flat.tif' is 2D"):
        segment_file(src, tmp_path, pred3d)
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, (rng.random((30, 40, 3)) * 255).astype(np.uint8))
    with pytest.raises(ImageFormatError, match=r"model expects 1 channel\(s\) but 'rgb.tif' has 3"):
        segment_file(rgb, tmp_path, pred2d)
    assert not list(tmp_path.glob("*.labels.tif"))


def test_tile_of_wrong_dimensionality(tmp_path, rng, pred3d):
    with pytest.raises(ConfigError, match="tile must have 3 sizes"):
        segment_array(rng.random((8, 16, 16)).astype(np.float32), pred3d, options=SegmentOptions(tile=(32, 32)))


def test_crash_mid_run_leaves_no_output(tmp_path, rng, pred3d):
    src = tmp_path / "vol.tif"
    tifffile.imwrite(src, rng.random((40, 64, 64)).astype(np.float32))
    out = tmp_path / "out"
    failing = FailingPredictor(pred3d, fail_on=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        segment_file(src, out, failing, options=SegmentOptions(batch_size=1, probabilities="zarr", preview=True))
    assert failing.calls == 3
    assert list(out.iterdir()) == []  # neither final names nor temporary files


def _peak_bytes(tmp_path, pred, depth: int) -> int:
    src = tmp_path / f"deep{depth}.tif"
    data = np.zeros((depth, 64, 64), np.uint8)
    data[:, 20:50, 10:40] = 200
    tifffile.imwrite(src, data)
    del data
    gc.collect()
    tracemalloc.start()
    try:
        segment_file(src, tmp_path / f"out{depth}", pred, options=SegmentOptions(probabilities="tif"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak


def test_streaming_memory_does_not_grow_with_depth(tmp_path):
    meta = make_meta(3, tile=(8, 32, 32), norm={"method": "fixed", "low": 0.0, "high": 255.0})
    pred = TorchPredictor(tiny_net(3), meta)
    shallow = _peak_bytes(tmp_path, pred, 120)  # deep enough to fill the read-ahead, blend and write queues
    deep = _peak_bytes(tmp_path, pred, 400)
    # One slab of working memory: input (1 channel) plus logits (3 classes), 8 x 64 x 64 float32 each:
    # 524 KB. The deep volume adds 280 planes, i.e. 13.8 MB of float32 logits if they were all kept.
    slab = (1 + 3) * 8 * 64 * 64 * 4
    assert deep <= shallow + slab, (shallow, deep)


def test_preview_of_a_large_2d_image_is_subsampled(tmp_path, rng, pred2d, monkeypatch):
    from pointseg_cli.infer import segment as seg

    monkeypatch.setattr(seg, "PREVIEW_SIZE", 32)
    src = tmp_path / "wide.tif"
    tifffile.imwrite(src, rng.random((70, 130)).astype(np.float32))
    res = segment_file(src, tmp_path, pred2d, options=SegmentOptions(preview=True))
    assert read_image(res.preview).shape == (14, 26, 3)  # stride 5


# --- models trained with --stain-normalize (a stain reference in their normalisation) ---------------


def _stain_pred(ref: dict) -> TorchPredictor:
    norm = {"method": "percentile", "low": 1.0, "high": 99.8, "per_channel": True, "stain": ref}
    return TorchPredictor(tiny_net(2, channels=3), make_meta(2, channels=3, norm=norm))


@pytest.fixture(scope="module")
def he_tiles():
    from pointseg_cli.demo import make_he_tile

    return make_he_tile((96, 112), seed=3).image, make_he_tile((96, 112), seed=4).image


def test_stain_reference_is_applied_before_intensity_scaling(tmp_path, he_tiles):
    from pointseg_cli.preprocess.normalize import normalize_image
    from pointseg_cli.preprocess.stain import normalize_to_reference, stain_reference

    image, target = he_tiles
    ref = stain_reference(target)
    pred = _stain_pred(ref)
    opts = SegmentOptions(overlap=0.5)
    res = segment_array(image, pred, options=opts, return_logits=True)
    colours = normalize_to_reference(image, ref)
    want = untiled(pred.model, normalize_image(colours, channel_axis=-1), channels=3)
    np.testing.assert_allclose(res.logits, want, atol=1e-4)
    off = segment_array(image, pred, options=SegmentOptions(overlap=0.5, stain=False), return_logits=True)
    np.testing.assert_allclose(off.logits, untiled(pred.model, normalize_image(image, channel_axis=-1), channels=3),
                               atol=1e-4)
    assert np.abs(off.logits - res.logits).max() > 0.01
    # the streamed file path fits the stains on the LazyImage subsample and maps every slab the same way
    src = tmp_path / "he.tif"
    tifffile.imwrite(src, image, photometric="rgb")
    out = segment_file(src, tmp_path / "out", pred, options=SegmentOptions(overlap=0.5, preview=True))
    np.testing.assert_array_equal(read_image(out.labels), res.labels)
    assert read_image(out.preview).shape == (96, 112, 3)


def test_stain_normalisation_undoes_a_stain_shift(he_tiles):
    from pointseg_cli.preprocess.stain import stain_reference
    from tests.train.he_synthetic import shift_stains

    original = he_tiles[0]
    moved = shift_stains(original)
    pred = _stain_pred(stain_reference(original))

    def logits(img: np.ndarray, stain: bool) -> np.ndarray:
        return segment_array(img, pred, options=SegmentOptions(stain=stain), return_logits=True).logits

    with_stain = np.abs(logits(moved, True) - logits(original, True)).mean()
    without = np.abs(logits(moved, False) - logits(original, False)).mean()
    assert with_stain < 0.5 * without, (with_stain, without)


def test_segment_block_needs_the_whole_images_stain_model(he_tiles):
    from pointseg_cli.infer.segment import input_statistics
    from pointseg_cli.preprocess.stain import stain_reference

    image = he_tiles[0]
    pred = _stain_pred(stain_reference(he_tiles[1]))
    opts = SegmentOptions(overlap=0.5)
    whole = input_statistics(image, pred, options=opts)
    assert whole.stain_source is not None
    labels = segment_array(image, pred, options=opts).labels
    block = image[8:72, 16:96]
    core = segment_block(block, pred, halo=(4, 4), stats=whole.stats, stain_source=whole.stain_source, options=opts)
    np.testing.assert_array_equal(core, labels[12:68, 20:92])
    with pytest.raises(ConfigError, match="pass the whole image's stain_source"):
        segment_block(block, pred, halo=(4, 4), stats=whole.stats, options=opts)


def test_malformed_stain_metadata_is_a_model_error(he_tiles):
    from pointseg_cli.errors import ModelError

    pred = _stain_pred({"method": "vahadane", "matrix": [[1.0, 0.0]], "max": [1.0, 1.0]})
    with pytest.raises(ModelError, match="the model's stain reference must hold a finite 3x2 stain matrix"):
        segment_array(he_tiles[0], pred)
