"""`pointseg segment --dask / --scheduler / --dask-workers` through the command line."""

from __future__ import annotations

import sys

import numpy as np
import tifffile

from pointseg_cli.cli.app import app
from tests.distributed.conftest import write_volumes


def _seg(runner, *args):
    return runner.invoke(app, ["segment", *map(str, args)], terminal_width=200)


def test_existing_scheduler_segments_files_like_one_process(runner, inputs, tmp_path, scheduler):
    one = _seg(runner, inputs, "-o", tmp_path / "one", "--model", "test-2d-gray")
    res = _seg(runner, inputs, "-o", tmp_path / "dist", "--model", "test-2d-gray", "--scheduler", scheduler)
    assert one.exit_code == 0 and res.exit_code == 0, res.output
    for stem in ("a", "b"):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "dist" / f"{stem}.labels.tif"),
                                      tifffile.imread(tmp_path / "one" / f"{stem}.labels.tif"))
    assert "a.tif" in res.output and "ok" in res.output


def test_one_volume_is_written_as_ome_zarr(runner, tmp_path, scheduler):
    (path,) = write_volumes(tmp_path / "in", 1)
    res = _seg(runner, path, "-o", tmp_path / "out", "--model", "test-3d", "--scheduler", scheduler)
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v0.instances.zarr", "v0.labels.zarr",
                                                                     "v0.objects.csv"]


def test_missing_extra_is_exit_2_with_the_install_command(runner, inputs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    res = _seg(runner, inputs, "-o", tmp_path / "out", "--model", "test-2d-gray", "--dask")
    assert res.exit_code == 2, res.output
    assert "pip install 'pointseg[distributed]'" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_exit_2_one_line(runner, inputs, tmp_path):
    res = _seg(runner, inputs, "-o", tmp_path / "out", "--model", "test-2d-gray", "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2, res.output
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_workers_with_a_scheduler_is_exit_2(runner, inputs, tmp_path):
    res = _seg(runner, inputs, "-o", tmp_path / "out", "--dask-workers", "2", "--scheduler", "tcp://127.0.0.1:9")
    assert res.exit_code == 2 and "one or the other" in res.output
