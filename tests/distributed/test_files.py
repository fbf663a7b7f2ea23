"""Many files as Dask tasks: the same outputs, skips and failures as one process."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
from pointseg_cli.errors import ConfigError, PointsegError
from pointseg_cli.infer import SegmentConfig, run_segment
from tests.distributed.conftest import write_volumes

CONFIG = SegmentConfig(tile=(16, 64, 64))


def test_files_equal_one_process_with_failures_and_resume(tmp_path, scheduler):
    write_volumes(tmp_path / "in", 3)
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 not really a tiff")
    cluster = ClusterConfig(scheduler=scheduler, connect_timeout=60)  # the 3 s default is tight on a loaded machine
    one = run_segment([tmp_path / "in"], CONFIG, out_dir=tmp_path / "one", model="test-3d", device="cpu")
    dist = run_segment_distributed([tmp_path / "in"], CONFIG, out_dir=tmp_path / "dist", model="test-3d",
                                   device="cpu", cluster=cluster)
    assert [(f.path.name, f.status, f.message) for f in dist.files] == [
        (f.path.name, f.status, f.message) for f in one.files
    ]
    assert dist.n_ok == 3 and dist.n_failed == 1
    for i in range(3):
        a = tifffile.imread(tmp_path / "one" / f"v{i}.labels.tif")
        assert len(np.unique(a)) == 2
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "dist" / f"v{i}.labels.tif"), a)
    again = run_segment_distributed([tmp_path / "in"], CONFIG, out_dir=tmp_path / "dist", model="test-3d",
                                    device="cpu", cluster=cluster)
    assert [f.status for f in again.files] == ["failed", "skipped", "skipped", "skipped"]


def test_bad_model_is_an_error_of_the_batch(tmp_path, scheduler):
    write_volumes(tmp_path / "in", 2)
    with pytest.raises(PointsegError, match="no-such-model|not a registered|unknown"):
        run_segment_distributed([tmp_path / "in"], CONFIG, out_dir=tmp_path / "out", model="no-such-model",
                                cluster=ClusterConfig(scheduler=scheduler))
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_a_one_line_config_error(tmp_path):
    write_volumes(tmp_path / "in", 1)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_segment_distributed([tmp_path / "in"], out_dir=tmp_path / "out", model="test-3d",
                                cluster=ClusterConfig(scheduler="tcp://127.0.0.1:9", connect_timeout=0.5))


@pytest.mark.parametrize("kwargs, message", [
    ({"workers": 0}, "workers must be >= 1"),
    ({"workers": 2, "scheduler": "tcp://h:1"}, "one or the other"),
    ({"mode": "tiles"}, "distributed mode must be one of"),
    ({"scheduler": "nonsense"}, "tcp://host:port"),
])
def test_cluster_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClusterConfig(**kwargs)
