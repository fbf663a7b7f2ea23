"""Malformed values in the four point readers: one PointsError naming the file, never another exception."""

from __future__ import annotations

import csv
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pointseg_cli.errors import PointsegError, PointsError
from pointseg_cli.io.point_formats import (
    read_cellcounter_xml,
    read_napari_csv,
    read_plain_csv,
    read_point_file,
    read_qupath_geojson,
)
from pointseg_cli.io.points import read_points_csv

READERS = {
    "canonical": read_points_csv, "csv": read_plain_csv, "napari": read_napari_csv,
    "qupath": read_qupath_geojson, "cellcounter": read_cellcounter_xml, "auto": read_point_file,
}


def _feature(coordinates, kind="Point", **props):
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": coordinates}, "properties": props}


@pytest.mark.parametrize(
    "doc, message",
    [
        ([_feature(5)], "malformed coordinate 5"),
        ([_feature("12,13")], "malformed coordinate"),
        ([_feature(["1", "2"])], "coordinates must be numbers; found '1' for x"),
        ([_feature([True, 2])], "coordinates must be numbers"),
        ([_feature(7, kind="MultiPoint")], "MultiPoint coordinates must be a list"),
        ([_feature("abc", kind="MultiPoint")], "MultiPoint coordinates must be a list"),
        ([_feature([1, 2], classification={"name": "a\x00b"})], "control character"),
        ([_feature([1, 2], classification={"name": 5})], "class name must be text"),
        ([{**_feature([1, 2]), "properties": ["x"]}], None),  # odd properties: no class, still read
        ([{**_feature([1, 2]), "plane": {"z": "top"}}], "coordinates must be numbers; found 'top' for plane.z"),
    ],
)
def test_geojson_values(tmp_path, doc, message):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(doc))
    if message is None:
        assert len(read_qupath_geojson(path)) == 1
        return
    with pytest.raises(PointsError, match=message) as err:
        read_qupath_geojson(path)
    assert "p.geojson" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("literal", ["1e999", "NaN", "-Infinity"])
def test_geojson_non_finite_numbers(tmp_path, literal):
    path = tmp_path / "p.geojson"
    template = '[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [LIT, 1]}}]'
    path.write_text(template.replace("LIT", literal))
    with pytest.raises(PointsError, match="finite"):
        read_qupath_geojson(path)


def test_geojson_deep_nesting(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(PointsError, match="'deep.json' is nested too deeply"):
        read_point_file(path)


@pytest.mark.parametrize("value", ["inf", "nan", "-Infinity", "1e999"])
def test_cellcounter_non_finite(tmp_path, value):
    path = tmp_path / "c.xml"
    path.write_text(
        "<CellCounter_Marker_File><Marker_Data><Marker_Type><Type>1</Type>"
        f"<Marker><MarkerX>{value}</MarkerX><MarkerY>3</MarkerY></Marker>"
        "</Marker_Type></Marker_Data></CellCounter_Marker_File>"
    )
    with pytest.raises(PointsError, match="'c.xml': <MarkerX> must be a finite number"):
        read_cellcounter_xml(path)


def test_cellcounter_control_character_in_name(tmp_path):
    path = tmp_path / "c.xml"
    path.write_text(
        "<CellCounter_Marker_File><Marker_Data><Marker_Type><Type>1</Type><Name>a&#9;b</Name>"
        "<Marker><MarkerX>1</MarkerX><MarkerY>3</MarkerY></Marker>"
        "</Marker_Type></Marker_Data></CellCounter_Marker_File>"
    )
    with pytest.raises(PointsError, match="control character"):
        read_cellcounter_xml(path)


@pytest.mark.parametrize("reader", ["canonical", "csv", "napari"])
@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e999"])
def test_csv_non_finite(tmp_path, reader, value):
    path = tmp_path / "p.csv"
    text = {
        "canonical": f"image,z,y,x,class\na,,{value},1,n\n",
        "csv": f"x,y,class\n{value},1,n\n",
        "napari": f"index,axis-0,axis-1\n0,{value},1\n",
    }[reader]
    path.write_text(text)
    with pytest.raises(PointsError, match="p.csv line 2: .* must be a finite number"):
        READERS[reader](path)


@pytest.mark.parametrize("reader", ["canonical", "csv"])
def test_csv_nul_in_class_name(tmp_path, reader):
    path = tmp_path / "p.csv"
    head = "image,z,y,x,class\na,," if reader == "canonical" else "x,y,class\n"
    path.write_text(head + "1,2,ce\x00ll\n")
    with pytest.raises(PointsError, match=r"p.csv line 2: the class name .* control character '\\x00'"):
        READERS[reader](path)


@pytest.mark.parametrize("reader", ["canonical", "csv", "napari", "auto"])
def test_csv_field_over_the_csv_module_limit(tmp_path, reader):
    path = tmp_path / "big.csv"
    huge = '"' + "x" * (csv.field_size_limit() + 10) + '"'
    header = {"canonical": "image,z,y,x,class", "napari": "index,axis-0,axis-1"}.get(reader, "x,y,class")
    path.write_text(f"{header}\n1,2,{huge}\n")
    with pytest.raises(PointsError, match="'big.csv' is not a readable table: field larger than field limit"):
        READERS[reader](path)


def test_not_utf8_and_permission(tmp_path, monkeypatch):
    path = tmp_path / "p.csv"
    path.write_bytes(b"image,z,y,x,class\n\xff\xfe,,1,2,n\n")
    with pytest.raises(PointsError, match="'p.csv' is not UTF-8 text"):
        read_points_csv(path)
    from pathlib import Path

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", denied)
    monkeypatch.setattr(Path, "read_text", denied)
    monkeypatch.setattr(Path, "read_bytes", denied)
    for reader in READERS.values():
        with pytest.raises(PointsError, match="permission denied"):
            reader(path)


# ------------------------------------------------------------------ fuzz: returns, or raises PointsegError

SEEDS = {
    "canonical": "image,z,y,x,class\na,,1,2,cell\nb,3,4.5,6,nucleus\n",
    "csv": "x;y;z;class;image\n1;2;;a;img.tif\n3.5;4;1;b;img.tif\n",
    "napari": "index,axis-0,axis-1,axis-2,label\n0,1,2,3,a\n1,4,5,6,b\n",
    "qupath": json.dumps({"type": "FeatureCollection", "features": [
        _feature([10.5, 20.5], classification={"name": "Tumor"}),
        _feature([[1, 2], [3, 4]], kind="MultiPoint"),
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1]]]}},
    ]}),
    "cellcounter": (
        "<?xml version='1.0'?><CellCounter_Marker_File><Image_Properties><Image_Filename>a.tif"
        "</Image_Filename></Image_Properties><Marker_Data><Marker_Type><Type>1</Type><Name>cell</Name>"
        "<Marker><MarkerX>1</MarkerX><MarkerY>2</MarkerY><MarkerZ>1</MarkerZ></Marker></Marker_Type>"
        "</Marker_Data></CellCounter_Marker_File>"
    ),
}
SUFFIX = {"canonical": ".csv", "csv": ".csv", "napari": ".csv", "qupath": ".geojson", "cellcounter": ".xml"}

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@st.composite
def _mutated(draw, fmt):
    text = SEEDS[fmt]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 6))
        insert = draw(st.text(max_size=6) | st.sampled_from(
            ["\x00", "nan", "inf", "1e999", '"', ",", ";", "\n", "<", ">", "[", "{", "-", "&#0;", "]]"]
        ))
        text = text[:at] + insert + text[at + cut:]
    return text


def _check(path, reader):
    try:
        reader(path)
    except PointsegError as exc:
        assert "\n" not in str(exc)


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("fmt", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_fuzz_mutated_files(tmp_path, fmt, data):
    path = tmp_path / f"p{SUFFIX[fmt]}"
    path.write_text(data.draw(_mutated(fmt)), encoding="utf-8", errors="surrogatepass")
    _check(path, READERS[fmt])
    _check(path, read_point_file)


@FUZZ
@given(features=st.lists(st.fixed_dictionaries({"type": st.just("Feature"), "geometry": _json_values,
                                                "properties": _json_values}), max_size=4) | _json_values)
def test_fuzz_geojson_structures(tmp_path, features):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps(features))
    _check(path, read_qupath_geojson)


@FUZZ
@given(coords=_json_values, kind=st.sampled_from(["Point", "MultiPoint"]))
def test_fuzz_geojson_coordinates(tmp_path, coords, kind):
    path = tmp_path / "p.geojson"
    path.write_text(json.dumps([_feature(coords, kind=kind)]))
    _check(path, read_qupath_geojson)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_bytes_auto(tmp_path, raw):
    path = tmp_path / "p.txt"
    path.write_bytes(raw)
    _check(path, read_point_file)
