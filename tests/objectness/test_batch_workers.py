"""`run_objectness(workers=N)`: images in parallel processes give the same files as one at a time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from pointseg_cli.errors import ConfigError
from pointseg_cli.io.images import write_tiff
from pointseg_cli.io.points import read_points_csv
from pointseg_cli.objectness import ObjectnessConfig
from pointseg_cli.objectness.batch import run_objectness


def _scene(tmp_path: Path, rng: np.random.Generator) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    rows = ["image,z,y,x,class"]
    for name, centres in (("a", [(8, 8), (22, 20)]), ("b", [(16, 16)]), ("c", [(5, 40)])):  # c: point outside
        write_tiff(images / f"{name}.tif", rng.integers(0, 255, (32, 32), dtype=np.uint8), axes="YX")
        rows += [f"{name},,{y},{x},cell" for y, x in centres]
    points = tmp_path / "points.csv"
    points.write_text("\n".join(rows) + "\n")
    return points, images


def test_parallel_outputs_equal_serial(tmp_path: Path, rng: np.random.Generator) -> None:
    points, images = _scene(tmp_path, rng)
    table = read_points_csv(points)
    runs = {n: run_objectness(table, [images], tmp_path / f"out{n}", config=ObjectnessConfig(), workers=n)
            for n in (1, 2)}
    serial, parallel = runs[1], runs[2]
    assert [o.stem for o in parallel.outcomes] == [o.stem for o in serial.outcomes] == ["a", "b", "c"]
    assert [o.error for o in parallel.outcomes] == [o.error for o in serial.outcomes]
    assert serial.failed == 1 and "outside the image" in serial.outcomes[2].error
    for stem in ("a", "b"):
        for kind in ("objectness", "regions", "background"):
            np.testing.assert_array_equal(tifffile.imread(tmp_path / "out2" / f"{stem}.{kind}.tif"),
                                          tifffile.imread(tmp_path / "out1" / f"{stem}.{kind}.tif"))
    assert json.loads(parallel.sidecar.read_text()) == json.loads(serial.sidecar.read_text())


def test_workers_must_be_positive(tmp_path: Path, rng: np.random.Generator) -> None:
    points, images = _scene(tmp_path, rng)
    with pytest.raises(ConfigError, match="workers must be >= 1; got 0"):
        run_objectness(read_points_csv(points), [images], tmp_path / "out", config=ObjectnessConfig(), workers=0)


def test_cli_workers_option(runner, tmp_path: Path, rng: np.random.Generator) -> None:  # noqa: ANN001
    from pointseg_cli.cli.app import app

    points, images = _scene(tmp_path, rng)
    res = runner.invoke(app, ["objectness", str(points), str(images), "--out", str(tmp_path / "o"), "--workers", "0"])
    assert res.exit_code == 2 and "workers must be >= 1; got 0" in res.output
