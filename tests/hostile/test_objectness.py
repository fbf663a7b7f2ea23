"""`pointseg objectness` on hostile inputs: a bad image costs that image; bad points cost nothing."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import BROKEN, assert_usage_error, invoke, leftovers

POINTS = "image,z,y,x,class\na,,20,30,cell\nbad,,20,30,cell\n"


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_image_fails_alone(runner, good_folder, tmp_path, kind):
    name, make, words = BROKEN[kind]
    make(good_folder / name)
    points = tmp_path / "points.csv"
    points.write_text(POINTS)
    out = tmp_path / "out"
    res = invoke(runner, "objectness", points, good_folder, "--out", out)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "1 of 2 inputs failed" in res.output
    assert any(w in res.output for w in words), res.output
    produced = sorted(p.name for p in out.iterdir())
    assert produced == ["a.background.tif", "a.objectness.tif", "a.regions.tif", "objectness.json"]
    assert leftovers(out) == []


@pytest.mark.parametrize(
    "text, needle",
    [
        ("image,z,y,x,class\na,,inf,3,cell\n", "must be a finite number"),
        ("image,z,y,x,class\na,,nan,3,cell\n", "must be a finite number"),
        ("image,z,y,x,class\na,,1,3,ce\x00ll\n", "control character"),
        ("image,z,y,x,class\na,,1,3," + "x" * 200_000 + "\n", "field larger than field limit"),
        ("image,y,x\na,1,2\n", "lacks column"),
    ],
)
def test_bad_points_file_is_a_usage_error(runner, good_folder, tmp_path, text, needle):
    points = tmp_path / "points.csv"
    points.write_text(text)
    out = tmp_path / "out"
    assert_usage_error(invoke(runner, "objectness", points, good_folder, "--out", out), "points.csv", needle)
    assert not out.exists()
