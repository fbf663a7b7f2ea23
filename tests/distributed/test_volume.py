"""One volume as halo blocks on Dask: labels.zarr equals the one-process labels voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
from pointseg_cli.distributed.volume import plan_blocks
from pointseg_cli.infer import SegmentConfig, run_segment
from tests.distributed.conftest import write_volumes

zarr = pytest.importorskip("zarr")

CONFIG = SegmentConfig(tile=(16, 64, 64), probabilities="zarr", instances="none")  # instances: test_volume_instances
#: Chunks of 16 × 64 × 64 and blocks of one chunk: the 30 × 100 × 120 volume is cut into 8 blocks
#: (and a generous connect timeout: the machine may be loaded).
SMALL = {"block_voxels": 16 * 64 * 64, "chunks": (16, 64, 64), "connect_timeout": 60}


def _read(store):
    return zarr.open_array(str(store / "0"), mode="r")[...]


def test_volume_blocks_equal_one_process(tmp_path, scheduler):
    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=4)
    one = run_segment([path], CONFIG, out_dir=tmp_path / "one", model="test-3d", device="cpu")
    cluster = ClusterConfig(scheduler=scheduler, **SMALL)
    dist = run_segment_distributed([path], CONFIG, out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                   cluster=cluster)
    (res,) = dist.files
    assert res.status == "ok", res.message
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == ["v0.labels.zarr", "v0.probabilities.zarr"]
    labels = _read(tmp_path / "dist" / "v0.labels.zarr")
    expected = tifffile.imread(one.files[0].outputs["labels"])
    assert len(np.unique(expected)) == 2
    np.testing.assert_array_equal(labels, expected)
    np.testing.assert_array_equal(_read(tmp_path / "dist" / "v0.probabilities.zarr"),
                                  _read(tmp_path / "one" / "v0.probabilities.zarr"))
    again = run_segment_distributed([path], CONFIG, out_dir=tmp_path / "dist", model="test-3d", cluster=cluster)
    assert again.files[0].status == "skipped"


def _fail_on_second_z_block() -> None:
    """Run on every worker: make blocks that start at z >= 16 raise."""
    import pointseg_cli.infer.blocks as blocks

    original = blocks.segment_region

    def failing(image, predictor, grid, region, **kwargs):
        if region[0].start >= 16:
            raise RuntimeError("simulated failure")
        return original(image, predictor, grid, region, **kwargs)

    failing.original = original
    blocks.segment_region = failing


def _restore() -> None:
    import pointseg_cli.infer.blocks as blocks

    blocks.segment_region = getattr(blocks.segment_region, "original", blocks.segment_region)


def test_failed_block_is_reported_with_its_position_and_leaves_no_store(tmp_path, scheduler):
    from distributed import Client

    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=4)
    with Client(scheduler, set_as_default=False) as client:
        client.run(_fail_on_second_z_block)
        try:
            dist = run_segment_distributed([path], CONFIG, out_dir=tmp_path / "out", model="test-3d",
                                           cluster=ClusterConfig(scheduler=scheduler, **SMALL))
        finally:
            client.run(_restore)
    (res,) = dist.files
    assert res.status == "failed"
    assert "z 16:30" in res.message and "of 8" in res.message and "simulated failure" in res.message
    assert [p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")] == []


def test_plan_blocks_tile_the_shape_with_whole_chunks():
    shape, chunks = (70, 300, 520), (32, 256, 256)
    blocks = plan_blocks(shape, chunks, max_voxels=64 * 256 * 256, min_blocks=4)
    cover = np.zeros(shape, dtype=np.int32)
    for b in blocks:
        cover[b] += 1
        assert all(s.start % c == 0 for s, c in zip(b, chunks, strict=True))
        assert np.prod([s.stop - s.start for s in b]) <= 64 * 256 * 256
    assert (cover == 1).all() and len(blocks) >= 4
    assert plan_blocks((10, 10), (10, 10), max_voxels=1, min_blocks=5) == [(slice(0, 10), slice(0, 10))]
