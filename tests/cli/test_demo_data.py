from __future__ import annotations

import numpy as np
import tifffile

from pointseg_cli.cli.app import app
from pointseg_cli.io.images import read_image


def test_demo_data_2d(runner, tmp_path):
    out = tmp_path / "he"
    res = runner.invoke(app, ["demo-data", str(out), "--kind", "2d-he", "--n", "2", "--size", "96x128"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "classes.txt",
        "he_000.classes.tif",
        "he_000.masks.tif",
        "he_000.tif",
        "he_001.classes.tif",
        "he_001.masks.tif",
        "he_001.tif",
    ]
    assert read_image(out / "he_001.tif").shape == (96, 128, 3)
    assert "he_000.tif" in res.output and "epithelial" in res.output


def test_demo_data_3d_seeded(runner, tmp_path):
    args = ["demo-data", "--kind", "3d-nuclei", "--n", "1", "--size", "16x64x64", "--seed", "2"]
    assert runner.invoke(app, [*args[:1], str(tmp_path / "a"), *args[1:]]).exit_code == 0
    assert runner.invoke(app, [*args[:1], str(tmp_path / "b"), *args[1:]]).exit_code == 0
    a = read_image(tmp_path / "a" / "nuclei3d_000.tif")
    np.testing.assert_array_equal(a, read_image(tmp_path / "b" / "nuclei3d_000.tif"))
    assert a.shape == (16, 64, 64)


def test_demo_data_quiet_prints_no_table(runner, tmp_path):
    res = runner.invoke(app, ["--quiet", "demo-data", str(tmp_path), "--kind", "2d-he", "--n", "1", "--size", "64"])
    assert res.exit_code == 0 and "he_000" not in res.output


def _bad(runner, tmp_path, *extra):
    out = tmp_path / "out"
    res = runner.invoke(app, ["demo-data", str(out), *extra])
    assert res.exit_code == 2, res.output
    assert not out.exists()
    return res.output


def test_bad_kind_exits_2(runner, tmp_path):
    out = _bad(runner, tmp_path, "--kind", "3d-cells")
    assert "3d-nuclei" in out and "3d-cells" in out


def test_bad_size_exits_2(runner, tmp_path):
    assert "2 integers" in _bad(runner, tmp_path, "--kind", "2d-he", "--size", "big")
    assert "3 values" in _bad(runner, tmp_path, "--kind", "3d-nuclei", "--size", "64x64")
    assert "between" in _bad(runner, tmp_path, "--kind", "2d-he", "--size", "8x8")


def test_bad_difficulty_and_n_exit_2(runner, tmp_path):
    assert "easy" in _bad(runner, tmp_path, "--kind", "2d-he", "--difficulty", "insane")
    assert "between 1" in _bad(runner, tmp_path, "--kind", "2d-he", "--n", "0")


def test_missing_kind_is_a_usage_error(runner, tmp_path):
    assert "--kind" in _bad(runner, tmp_path)


def test_demo_data_2d_gray_writes_points(runner, tmp_path):
    res = runner.invoke(app, ["demo-data", str(tmp_path), "--kind", "2d-gray", "--n", "2", "--size", "96"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.txt", "gray_000.classes.tif", "gray_000.masks.tif", "gray_000.tif",
        "gray_001.classes.tif", "gray_001.masks.tif", "gray_001.tif", "points.csv",
    ]
    assert read_image(tmp_path / "gray_000.tif").shape == (96, 96)
    assert "points.csv" in res.output


def test_demo_data_3d_sim_writes_split_and_voxel_size(runner, tmp_path):
    res = runner.invoke(app, ["demo-data", str(tmp_path), "--kind", "3d-sim", "--n", "3", "--size", "16x96x96"])
    assert res.exit_code == 0, res.output
    names = {p.name for p in tmp_path.iterdir()}
    assert {"sim_002.tif", "sim_002.masks.tif", "sim_002.classes.tif", "classes.txt", "points.csv",
            "points.trainval.csv", "split.csv"} <= names
    assert "train: sim_000; val: sim_001; test: sim_002" in " ".join(res.output.split())
    assert "melanolipofuscin" in res.output
    with tifffile.TiffFile(tmp_path / "sim_000.tif") as tf:
        assert 'PhysicalSizeZ="0.125"' in tf.ome_metadata and 'PhysicalSizeX="0.04"' in tf.ome_metadata


def test_help_lists_every_kind(runner):
    res = runner.invoke(app, ["demo-data", "--help"])
    assert res.exit_code == 0
    for kind in ("3d-nuclei", "2d-he", "2d-gray", "3d-sim"):
        assert kind in res.output
