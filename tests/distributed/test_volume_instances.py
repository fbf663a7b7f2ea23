"""One volume as halo blocks on Dask, with instances: the same objects and table as one process."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
from pointseg_cli.infer import SegmentConfig, run_segment
from tests.distributed.conftest import write_volumes

zarr = pytest.importorskip("zarr")
torch = pytest.importorskip("torch")

#: Blocks of one 16 × 64 × 64 chunk: a 30 × 100 × 120 volume is cut into 8 blocks (and a generous
#: connect timeout: the machine may be loaded).
SMALL = {"block_voxels": 16 * 64 * 64, "chunks": (16, 64, 64), "connect_timeout": 60}
FACES = ((0, 16), (1, 64), (2, 64))  # (axis, position) of the block faces


def _read(store):
    return zarr.open_array(str(store / "0"), mode="r")[...]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two id images hold the same objects up to relabelling (0 = background in both)."""
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def _crossing(ids: np.ndarray) -> int:
    """Objects that have voxels on both sides of some block face."""
    found: set[int] = set()
    for axis, pos in FACES:
        lo, hi = np.take(ids, pos - 1, axis=axis), np.take(ids, pos, axis=axis)
        same = (lo == hi) & (lo > 0)
        found |= set(np.unique(lo[same]).tolist())
    return len(found)


def _compare(one_dir, dist_dir, stem: str) -> np.ndarray:
    expected = tifffile.imread(one_dir / f"{stem}.instances.tif")
    got = _read(dist_dir / f"{stem}.instances.zarr")
    assert got.dtype == np.uint32 and got.shape == expected.shape
    assert _same_partition(got, expected)
    # ids are numbered in raster order of each object's first voxel on both paths: identical arrays
    np.testing.assert_array_equal(got, expected)
    assert (dist_dir / f"{stem}.objects.csv").read_text() == (one_dir / f"{stem}.objects.csv").read_text()
    return got


def test_distance_instances_across_blocks_equal_one_process(tmp_path, scheduler):
    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=4)
    config = SegmentConfig(tile=(16, 64, 64), voxel_size=(2.0, 0.5, 0.5))  # instances "auto": distance here
    assert run_segment([path], config, out_dir=tmp_path / "one", model="test-3d", device="cpu").n_ok == 1
    dist = run_segment_distributed([path], config, out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                   cluster=ClusterConfig(scheduler=scheduler, **SMALL))
    (res,) = dist.files
    assert res.status == "ok", res.message
    assert sorted(p.name for p in (tmp_path / "dist").iterdir()) == [
        "v0.instances.zarr", "v0.labels.zarr", "v0.objects.csv"]
    ids = _compare(tmp_path / "one", tmp_path / "dist", "v0")
    assert ids.max() > 100 and _crossing(ids) > 20  # many objects, many of them cut by block faces
    store = zarr.open_group(str(tmp_path / "dist" / "v0.instances.zarr"), mode="r")
    assert store.attrs["pointseg"]["instances"] == {"method": "distance"}
    assert store.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 0.5, 0.5]


def _balls(shape: tuple[int, ...]) -> np.ndarray:
    """Bright balls, in touching pairs and across the block faces, whose brightness peaks at their centres.

    Heights differ from ball to ball, so no voxel is equally close to two centres.
    """
    grid = np.indices(shape).astype(np.float32)
    out = np.zeros(shape, np.float32)
    centres = [(16, 64, 64), (16, 64, 75), (8, 30, 64), (22, 64, 30), (15, 90, 100), (16, 20, 20),
               (8, 80, 20), (24, 40, 100)]
    for k, c in enumerate(centres):
        r = np.sqrt(sum((g - m) ** 2 for g, m in zip(grid, c, strict=True)))
        out = np.maximum(out, (1.0 - 0.04 * k) * np.clip(1 - r / 7.0, 0, 1))
    return out


def _centre_model(path) -> None:
    """An ONNX model with a centre output: class = bright voxels, centre map = the brightness."""
    from torch import nn

    from pointseg_cli.export.onnx import export_module
    from pointseg_cli.model.metadata import ModelMetadata

    class Bright(nn.Module):
        def forward(self, x):
            return self.forward_heads(x)["logits"]

        def forward_heads(self, x):
            fg = (x[:, :1] > 0.1).float()
            return {"logits": torch.cat([1 - fg, fg], dim=1), "centers": x[:, :1]}

    meta = ModelMetadata(classes=("ball",), ndim=3, channels=1, normalization={"method": "none"},
                         tile=(16, 32, 32), divisor=8, outputs=("logits", "centers"))
    export_module(Bright(), meta, path)


def test_centre_instances_across_blocks_equal_one_process(tmp_path, scheduler):
    vol = _balls((30, 100, 120))
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "b.tif", vol)
    model = tmp_path / "bright.onnx"
    _centre_model(model)
    config = SegmentConfig(tile=(16, 64, 64), instances="centers")
    one = run_segment([tmp_path / "in" / "b.tif"], config, out_dir=tmp_path / "one", model=model, device="cpu")
    assert one.n_ok == 1, one.files[0].message
    dist = run_segment_distributed([tmp_path / "in" / "b.tif"], config, out_dir=tmp_path / "dist", model=model,
                                   device="cpu", cluster=ClusterConfig(scheduler=scheduler, **SMALL))
    assert dist.files[0].status == "ok", dist.files[0].message
    ids = _compare(tmp_path / "one", tmp_path / "dist", "b")
    # one object per ball, touching pairs split, balls cut by block faces kept whole
    assert ids.max() == 8 and _crossing(ids) >= 4
    assert zarr.open_group(str(tmp_path / "dist" / "b.instances.zarr"), mode="r").attrs["pointseg"]["instances"] == {
        "method": "centers"}
    assert [p.name for p in (tmp_path / "dist").iterdir() if p.name.startswith(".")] == []  # no scratch left


def test_instances_none_writes_labels_only(tmp_path, scheduler):
    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=2)
    dist = run_segment_distributed([path], SegmentConfig(tile=(16, 64, 64), instances="none"),
                                   out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                   cluster=ClusterConfig(scheduler=scheduler, **SMALL))
    assert dist.files[0].status == "ok" and [p.name for p in (tmp_path / "dist").iterdir()] == ["v0.labels.zarr"]


def _fail_instances() -> None:
    import pointseg_cli.infer.instances as instances

    original = instances.instances_from_maps

    def failing(*args, **kwargs):
        raise RuntimeError("simulated failure")

    failing.original = original
    instances.instances_from_maps = failing


def _restore() -> None:
    import pointseg_cli.infer.instances as instances

    instances.instances_from_maps = getattr(instances.instances_from_maps, "original", instances.instances_from_maps)


def test_failed_instance_step_is_reported_and_leaves_no_output(tmp_path, scheduler):
    from distributed import Client

    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=4)
    with Client(scheduler, set_as_default=False) as client:
        client.run(_fail_instances)
        try:
            dist = run_segment_distributed([path], SegmentConfig(tile=(16, 64, 64)), out_dir=tmp_path / "out",
                                           model="test-3d", cluster=ClusterConfig(scheduler=scheduler, **SMALL))
        finally:
            client.run(_restore)
    (res,) = dist.files
    assert res.status == "failed"
    assert res.message == "instances (distance): RuntimeError: simulated failure"
    assert list((tmp_path / "out").iterdir()) == []


def test_centres_with_a_model_without_them_stops_before_any_work(tmp_path, scheduler):
    from pointseg_cli.errors import ConfigError

    (path,) = write_volumes(tmp_path / "in", 1, shape=(30, 100, 120), seed=2)
    with pytest.raises(ConfigError, match="--instances centers needs a model with a centre output"):
        run_segment_distributed([path], SegmentConfig(instances="centers"), out_dir=tmp_path / "out", model="test-3d",
                                cluster=ClusterConfig(scheduler=scheduler, connect_timeout=60))
    assert not (tmp_path / "out").exists()
