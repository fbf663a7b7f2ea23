"""`pointseg annotate-import` on malformed point files: exit 2, one line naming the file, no output."""

from __future__ import annotations

import csv
import json

import pytest

from tests.hostile.conftest import assert_usage_error, invoke, leftovers


def _geojson(coordinates, kind="Point"):
    return json.dumps([{"type": "Feature", "geometry": {"type": kind, "coordinates": coordinates}}])


def _cellcounter(x):
    return (
        "<CellCounter_Marker_File><Marker_Data><Marker_Type><Type>1</Type>"
        f"<Marker><MarkerX>{x}</MarkerX><MarkerY>3</MarkerY></Marker></Marker_Type></Marker_Data>"
        "</CellCounter_Marker_File>"
    )


CASES = {
    "geojson-number": ("p.geojson", _geojson(5), "malformed coordinate"),
    "geojson-text": ("p.geojson", _geojson(["10", "20"]), "coordinates must be numbers"),
    "geojson-multipoint-text": ("p.geojson", _geojson("abc", kind="MultiPoint"), "must be a list"),
    "geojson-inf": ("p.geojson", _geojson([1e999, 2]).replace("Infinity", "1e999"), "finite"),
    "geojson-nan": ("p.geojson", _geojson([float("nan"), 2]), "finite"),
    "geojson-deep": ("p.geojson", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "xml-inf": ("p.xml", _cellcounter("inf"), "must be a finite number"),
    "xml-nan": ("p.xml", _cellcounter("NaN"), "must be a finite number"),
    "xml-broken": ("p.xml", "<CellCounter_Marker_File><Marker", "not valid XML"),
    "csv-inf": ("p.csv", "x,y,class\ninf,2,cell\n", "must be a finite number"),
    "csv-nan": ("p.csv", "x,y,class\n1,nan,cell\n", "must be a finite number"),
    "csv-nul-class": ("p.csv", "x,y,class\n1,2,ce\x00ll\n", "control character"),
    "csv-huge-field": ("p.csv", "x,y,class\n1,2,\"" + "c" * (csv.field_size_limit() + 1) + "\"\n",
                       "field larger than field limit"),
    "napari-inf": ("p.csv", "index,axis-0,axis-1\n0,inf,2\n", "must be a finite number"),
    "not-utf8": ("p.csv", b"x,y,class\n1,2,\xff\xfe\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_points(runner, good_folder, tmp_path, case):
    name, content, needle = CASES[case]
    src = tmp_path / name
    if isinstance(content, bytes):
        src.write_bytes(content)
    else:
        src.write_text(content)
    out = tmp_path / "out" / "points.csv"
    res = invoke(runner, "annotate-import", src, "--images", good_folder, "--image", "a", "--out", out)
    assert_usage_error(res, name, needle)
    assert not out.exists() and leftovers(tmp_path) == []


def test_points_file_that_is_a_fifo_never_hangs(runner, good_folder, tmp_path):
    import os

    os.mkfifo(tmp_path / "p.csv")
    out = tmp_path / "points.csv"
    res = invoke(runner, "annotate-import", tmp_path / "p.csv", "--images", good_folder, "--out", out)
    assert_usage_error(res, "p.csv", "not a regular file")
    assert not out.exists()
