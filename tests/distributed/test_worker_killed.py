"""A worker killed in the middle of a run: Dask retries its task, and a re-run leaves correct outputs."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile

from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
from pointseg_cli.infer import SegmentConfig, run_segment
from tests.distributed.conftest import write_volumes

zarr = pytest.importorskip("zarr")

CONFIG = SegmentConfig(tile=(16, 64, 64))


def _kill_a_busy_worker(client, prefix: str, running: threading.Thread) -> str | None:
    """SIGKILL the process of the first worker seen running a task whose key starts with ``prefix``."""
    pids = client.run(os.getpid)
    while running.is_alive():
        for addr, keys in client.processing().items():
            if any(str(k).startswith(prefix) for k in keys) and addr in pids:
                time.sleep(0.2)  # inside the task, not at its very start
                os.kill(pids[addr], signal.SIGKILL)
                return str(keys[0])
        time.sleep(0.02)
    return None


# Timing-dependent (it kills a process while a task runs) and slow on a loaded machine: run with -m slow.
@pytest.mark.slow
@pytest.mark.parametrize("shape", ["files", "blocks"])
def test_worker_killed_mid_run_output_correct_on_rerun(tmp_path, scheduler, shape):
    from distributed import Client

    n = 4 if shape == "files" else 1
    paths = write_volumes(tmp_path / "in", n, shape=(30, 100, 120), seed=7)
    one = run_segment(paths, CONFIG, out_dir=tmp_path / "one", model="test-3d", device="cpu")
    cluster = ClusterConfig(scheduler=scheduler, block_voxels=16 * 64 * 64, chunks=(16, 64, 64))
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = run_segment_distributed(paths, CONFIG, out_dir=tmp_path / "dist", model="test-3d",
                                                        device="cpu", cluster=cluster)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    with Client(scheduler, set_as_default=False) as client:
        worker = threading.Thread(target=run)
        worker.start()
        killed = _kill_a_busy_worker(client, "pointseg-file" if shape == "files" else "pointseg-block", worker)
        worker.join(timeout=600)
        client.wait_for_workers(2, timeout=300)  # the nanny restarts the killed worker
    assert "error" not in outcome, repr(outcome["error"])
    assert killed is not None, "no task was seen running"
    # Dask retried the lost task elsewhere; whatever this run reported, a re-run completes the outputs.
    rerun = run_segment_distributed(paths, CONFIG, out_dir=tmp_path / "dist", model="test-3d", device="cpu",
                                    cluster=cluster)
    assert all(f.status in ("ok", "skipped") for f in rerun.files), [(f.status, f.message) for f in rerun.files]
    for res in one.files:
        expected = tifffile.imread(res.outputs["labels"])
        stem = res.path.stem
        if shape == "files":
            got = tifffile.imread(tmp_path / "dist" / f"{stem}.labels.tif")
        else:
            got = zarr.open_array(str(tmp_path / "dist" / f"{stem}.labels.zarr" / "0"), mode="r")[...]
        np.testing.assert_array_equal(got, expected)
