"""A LocalCluster of 2 worker processes shared by the distributed tests, and small inputs."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile

pytest.importorskip("distributed")


@pytest.fixture(scope="session")
def scheduler() -> str:
    """Address of a 2-process LocalCluster (started once per test session)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster:
        yield cluster.scheduler_address


def write_volumes(folder, n: int, shape=(20, 100, 120), seed: int = 0) -> list:
    """``n`` random uint8 volumes ``v<i>.tif`` with bright blobs, so that both classes occur."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        vol = (rng.random(shape) * 60).astype(np.uint8)
        for _ in range(6):
            z, y, x = (int(rng.integers(0, s)) for s in shape)
            vol[max(0, z - 3) : z + 3, max(0, y - 8) : y + 8, max(0, x - 8) : x + 8] += 150
        tifffile.imwrite(folder / f"v{i}.tif", vol)
        paths.append(folder / f"v{i}.tif")
    return paths
