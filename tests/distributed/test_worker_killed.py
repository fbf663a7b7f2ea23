"""A worker process killed in the middle of a task: Dask retries the task, the outputs are right.

The kill is deterministic, not timed: every worker wraps one function of the pipeline, and the
first call of it anywhere on the cluster SIGKILLs its own worker process (a marker file, created
exclusively, makes it the only one). The nanny starts a new worker, Dask runs the lost task again
elsewhere, and the run must end as if nothing had happened; a re-run finds everything done and
removes what the dead worker left behind.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
from pointseg_cli.infer import SegmentConfig, run_segment
from tests.distributed.conftest import write_volumes

zarr = pytest.importorskip("zarr")

CONFIG = SegmentConfig(tile=(16, 64, 64))  # instances "auto": distance with the test model

#: Where to die: (module, function, how). "call": on entering the function; "tile": at the second
#: tile of a file, with its outputs' temporaries open and its lock held.
TARGETS = {
    "files": ("pointseg_cli.infer.batch", "segment_file", "tile"),
    "blocks": ("pointseg_cli.infer.blocks", "segment_region", "call"),
    "instances": ("pointseg_cli.infer.instances", "instances_from_maps", "call"),
}


def _arm(marker: str, module: str, name: str, how: str) -> None:
    """Run on every worker: the first call of ``module.name`` on the cluster kills its worker process."""
    import importlib
    import os
    import signal

    mod = importlib.import_module(module)
    original = getattr(mod, name)

    def first() -> bool:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrapper(*args, **kwargs):
        if how == "call" and first():
            die()
        if how == "tile":
            def progress(task, done, total):
                if done >= 2 and first():
                    die()

            kwargs["progress"] = progress
        return original(*args, **kwargs)

    wrapper.original = original
    setattr(mod, name, wrapper)


def _disarm(module: str, name: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    setattr(mod, name, getattr(getattr(mod, name), "original", getattr(mod, name)))


@pytest.mark.parametrize("shape", ["files", "blocks", "instances"])
def test_worker_killed_mid_task_the_run_completes_and_a_rerun_finds_it_done(tmp_path, scheduler, shape):
    from distributed import Client

    n = 4 if shape == "files" else 1
    paths = write_volumes(tmp_path / "in", n, shape=(30, 100, 120), seed=7)
    one = run_segment(paths, CONFIG, out_dir=tmp_path / "one", model="test-3d", device="cpu")
    cluster = ClusterConfig(scheduler=scheduler, block_voxels=16 * 64 * 64, chunks=(16, 64, 64),
                            connect_timeout=60)
    module, name, how = TARGETS[shape]
    marker = tmp_path / "killed"
    with Client(scheduler, set_as_default=False) as client:
        client.run(_arm, str(marker), module, name, how)
        try:
            first = run_segment_distributed(paths, CONFIG, out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                            cluster=cluster)
        finally:
            client.run(_disarm, module, name)
            client.wait_for_workers(2, timeout=300)  # the nanny has started a new worker
    assert marker.exists(), "no worker was killed"
    assert [f.status for f in first.files] == ["ok"] * n, [f.message for f in first.files]
    rerun = run_segment_distributed(paths, CONFIG, out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                    cluster=cluster)
    assert [f.status for f in rerun.files] == ["skipped"] * n, [f.message for f in rerun.files]
    names = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert [p for p in names if p.startswith(".")] == []  # the dead worker's temporaries and lock are gone
    suffix = "tif" if shape == "files" else "zarr"
    assert names == sorted(f"{p.stem}.{kind}" for p in paths
                           for kind in (f"labels.{suffix}", f"instances.{suffix}", "objects.csv"))
    for res in one.files:
        stem = res.path.stem
        for kind in ("labels", "instances"):
            expected = tifffile.imread(res.outputs[kind])
            if shape == "files":
                got = tifffile.imread(tmp_path / "dist" / f"{stem}.{kind}.tif")
            else:
                got = zarr.open_array(str(tmp_path / "dist" / f"{stem}.{kind}.zarr" / "0"), mode="r")[...]
            np.testing.assert_array_equal(got, expected)
