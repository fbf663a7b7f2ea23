from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pointseg_cli.errors import ConfigError, PointsError
from pointseg_cli.io.point_formats import (
    detect_format,
    read_cellcounter_xml,
    read_napari_csv,
    read_plain_csv,
    read_point_file,
    read_qupath_geojson,
)
from pointseg_cli.io.points import PointTable, parse_classes, read_points_csv, write_points_csv

NAN = math.nan


def _table(**kw):
    base = dict(image=["a", "b", "a"], coords=[[NAN, 1, 2], [3, 4, 5.5], [NAN, 2, 2]], class_name=["x", "y", "x"])
    base.update(kw)
    return PointTable(**base)


# ------------------------------------------------------------------ PointTable


def test_table_defaults_to_sorted_classes_and_ids():
    t = _table(class_name=["y", "x", "y"])
    assert t.class_names == ("x", "y")
    assert t.class_ids().tolist() == [2, 1, 2]
    assert t.class_ids().dtype == np.int32


def test_table_respects_given_class_order():
    t = _table(class_names=("y", "x", "z"))
    assert t.class_ids().tolist() == [2, 1, 2]
    assert t.counts() == {"a": {"y": 0, "x": 2, "z": 0}, "b": {"y": 1, "x": 0, "z": 0}}


def test_table_for_image_stems_len_and_pixels():
    t = _table()
    assert t.stems == ["a", "b"] and len(t) == 3
    a = t.for_image("a")
    assert len(a) == 2 and a.class_names == t.class_names
    assert a.pixel_coords(2).tolist() == [[1, 2], [2, 2]]
    assert t.for_image("b").pixel_coords(3).tolist() == [[3, 4, 6]]  # 5.5 rounds to even


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(coords=[[1, 2], [3, 4], [5, 6]]), "shape (N, 3)"),
        (dict(image=["a", "b"]), "differ in length"),
        (dict(class_names=("x",)), "not among the classes"),
        (dict(class_names=("x", "y", "x")), "unique"),
        (dict(coords=[[NAN, NAN, 2], [3, 4, 5], [NAN, 2, 2]]), "finite"),
        (dict(image=["a", "", "a"]), "image name"),
    ],
)
def test_table_rejects_bad_input(kw, message):
    with pytest.raises(PointsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _table(**kw)


def test_pixel_coords_dimension_mismatch():
    t = _table()
    with pytest.raises(PointsError, match="z coordinate"):
        t.pixel_coords(2)
    with pytest.raises(PointsError, match="no z"):
        t.pixel_coords(3)


def test_table_is_read_only():
    t = _table()
    with pytest.raises(ValueError):
        t.coords[0, 1] = 9


def test_concat_and_empty():
    t = PointTable.concat([_table(), _table(class_name=["z", "z", "z"])])
    assert len(t) == 6 and t.class_names == ("x", "y", "z")
    assert len(PointTable.empty(("a",))) == 0


def test_parse_classes():
    assert parse_classes(" a, b ,c") == ("a", "b", "c")
    assert parse_classes(None) is None and parse_classes("") is None
    with pytest.raises(PointsError, match="repeats"):
        parse_classes("a,a")
    with pytest.raises(PointsError, match="empty name"):
        parse_classes("a,,b")


# ------------------------------------------------------------------ canonical CSV


def test_canonical_round_trip(tmp_path):
    t = _table()
    path = write_points_csv(tmp_path / "p.csv", t)
    assert path.read_text().splitlines() == ["image,z,y,x,class", "a,,1,2,x", "b,3,4,5.5,y", "a,,2,2,x"]
    back = read_points_csv(path)
    np.testing.assert_array_equal(back.coords, t.coords)
    assert back.image.tolist() == t.image.tolist() and back.class_name.tolist() == t.class_name.tolist()
    assert read_points_csv(path, classes=["y", "x"]).class_names == ("y", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]  # no temporary left behind


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["img1", "b,c", "ü"]),
            st.one_of(st.just(NAN), st.floats(0, 1e4, allow_nan=False)),
            st.floats(0, 1e4, allow_nan=False), st.floats(0, 1e4, allow_nan=False),
            st.sampled_from(["nucleus", "cell body", "x\"y"]),
        ),
        min_size=1, max_size=8,
    )
)
def test_canonical_round_trip_property(tmp_path_factory, rows):
    t = PointTable(image=[r[0] for r in rows], coords=[r[1:4] for r in rows], class_name=[r[4] for r in rows])
    path = write_points_csv(tmp_path_factory.mktemp("rt") / "p.csv", t)
    back = read_points_csv(path)
    np.testing.assert_array_equal(back.coords, t.coords)
    assert back.image.tolist() == t.image.tolist() and back.class_name.tolist() == t.class_name.tolist()


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("image,y,x,class\na,1,2,n\n", r"lacks column\(s\) \['z'\]"),
        ("image,z,y,x,class\n", "no points"),
        ("image,z,y,x,class\na,,one,2,n\n", "line 2: y must be a number; found 'one'"),
        ("image,z,y,x,class\na,,1,inf,n\n", "finite"),
        ("image,z,y,x,class\n,,1,2,n\n", "image name is empty"),
        ("image,z,y,x,class\na,,1,2,\n", "class name is empty"),
        ("image,z,y,x,class\na,,1\n", "expected 5 fields"),
    ],
)
def test_canonical_read_errors(tmp_path, text, message):
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(PointsError, match=message):
        read_points_csv(path)


def test_canonical_unknown_class_and_missing_file(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("image,z,y,x,class\na,,1,2,n\n")
    with pytest.raises(PointsError, match=r"classes \['n'\] not among --classes \['m'\]"):
        read_points_csv(path, classes=["m"])
    with pytest.raises(PointsError, match="does not exist"):
        read_points_csv(tmp_path / "nope.csv")


# ------------------------------------------------------------------ plain CSV


def test_plain_csv_flexible_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("Label;X (px);Y (px);Z;Filename\nnuc;10.5;20;3;/data/img 1.ome.tif\ncell;1;2;;C:\\d\\b.tif\n")
    raw = read_plain_csv(path)
    np.testing.assert_array_equal(raw.coords, [[3, 20, 10.5], [NAN, 2, 1]])
    assert raw.class_name.tolist() == ["nuc", "cell"]
    assert raw.image.tolist() == ["img 1", "b"]
    assert raw.format == "csv" and not raw.z_is_stack_position


def test_plain_csv_without_class_or_image_and_axis_columns(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("y\tx\n1\t2\n")
    raw = read_plain_csv(path)
    assert raw.class_name.tolist() == [""] and raw.image.tolist() == [""]
    path.write_text("axis-0,axis-1,axis-2\n1,2,3\n")
    np.testing.assert_array_equal(read_plain_csv(path).coords, [[1, 2, 3]])


@pytest.mark.parametrize(
    "text, message",
    [
        ("a,b\n1,2\n", "no coordinate columns: expected x and y"),
        ("x,y\n", "no points"),
        ("x,y\n1,abc\n", "line 2: y must be a number; found 'abc'"),
        ("x,y\n1,\n", "line 2: y must be a number"),
        ("x,y\n1,nan\n", "finite"),
    ],
)
def test_plain_csv_errors(tmp_path, text, message):
    path = tmp_path / "a.csv"
    path.write_text(text)
    with pytest.raises(PointsError, match=message):
        read_plain_csv(path)


# ------------------------------------------------------------------ napari


def test_napari_2d_and_3d(tmp_path):
    p2 = tmp_path / "a.csv"
    p2.write_text("index,axis-0,axis-1,label,confidence\n0,5.0,6.0,nucleus,0.9\n1,7,8,cell,1\n")
    raw = read_napari_csv(p2)
    np.testing.assert_array_equal(raw.coords, [[NAN, 5, 6], [NAN, 7, 8]])
    assert raw.class_name.tolist() == ["nucleus", "cell"] and raw.format == "napari"
    p3 = tmp_path / "v.csv"
    p3.write_text("index,axis-0,axis-1,axis-2\n0,1,2,3\n")
    raw3 = read_napari_csv(p3)
    np.testing.assert_array_equal(raw3.coords, [[1, 2, 3]])
    assert raw3.class_name.tolist() == [""]


def test_napari_errors(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("index,axis-0,axis-1,axis-2,axis-3\n0,1,2,3,4\n")
    with pytest.raises(PointsError, match="4 axis-N columns; expected 2"):
        read_napari_csv(path)
    path.write_text("index,x,y\n0,1,2\n")
    with pytest.raises(PointsError, match="not a napari points CSV"):
        read_napari_csv(path)


# ------------------------------------------------------------------ QuPath


def _feature(geom, cls=None, plane=None):
    f = {"type": "Feature", "geometry": geom, "properties": {"objectType": "annotation"}}
    if cls is not None:
        f["properties"]["classification"] = {"name": cls, "color": [255, 0, 0]}
    if plane is not None:
        f["geometry"]["plane"] = plane
    return f


def test_qupath_feature_collection(tmp_path):
    data = {
        "type": "FeatureCollection",
        "features": [
            _feature({"type": "Point", "coordinates": [10.5, 20.5]}, "Tumor"),
            _feature({"type": "MultiPoint", "coordinates": [[1.0, 2.0], [3.7, 4.2]]}, "Stroma"),
            _feature({"type": "Point", "coordinates": [5.5, 6.5]}),
        ],
    }
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(data))
    raw = read_qupath_geojson(path)
    np.testing.assert_allclose(raw.coords, [[NAN, 20, 10], [NAN, 1.5, 0.5], [NAN, 3.7, 3.2], [NAN, 6, 5]])
    assert raw.class_name.tolist() == ["Tumor", "Stroma", "Stroma", ""]


def test_qupath_list_plane_z_and_skips_polygons(tmp_path, caplog):
    data = [
        _feature({"type": "Point", "coordinates": [1.5, 1.5]}, "A", plane={"c": -1, "z": 4, "t": 0}),
        _feature({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}, "A"),
    ]
    path = tmp_path / "a.json"
    path.write_text(json.dumps(data))
    raw = read_qupath_geojson(path)
    np.testing.assert_allclose(raw.coords, [[4, 1, 1]])
    assert "Polygon" in caplog.text


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid GeoJSON"),
        ('{"type": "Topology"}', "not a GeoJSON FeatureCollection"),
        ('{"type": "FeatureCollection", "features": []}', "no Point or MultiPoint"),
        ('[{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": []}}]', r"found only Polygon"),
        ('[{"type": "Feature"}]', "feature 0 has no geometry"),
        ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": [1]}}]', "malformed coordinate"),
        ('[{"type": "Feature", "geometry": {"type": "Point", "coordinates": ["a", 1]}}]', "must be numbers"),
    ],
)
def test_qupath_errors(tmp_path, text, message):
    path = tmp_path / "a.geojson"
    path.write_text(text)
    with pytest.raises(PointsError, match=message):
        read_qupath_geojson(path)


# ------------------------------------------------------------------ Cell Counter

CELLCOUNTER = """<?xml version="1.0" encoding="UTF-8"?>
<CellCounter_Marker_File>
  <Image_Properties><Image_Filename>stack 1.tif</Image_Filename></Image_Properties>
  <Marker_Data>
    <Current_Type>1</Current_Type>
    <Marker_Type><Type>1</Type><Name>nucleus</Name>
      <Marker><MarkerX>10</MarkerX><MarkerY>20</MarkerY><MarkerZ>1</MarkerZ></Marker>
      <Marker><MarkerX>11</MarkerX><MarkerY>21</MarkerY><MarkerZ>3</MarkerZ></Marker>
    </Marker_Type>
    <Marker_Type><Type>2</Type>
      <Marker><MarkerX>5</MarkerX><MarkerY>6</MarkerY></Marker>
    </Marker_Type>
    <Marker_Type><Type>3</Type><Name>empty</Name></Marker_Type>
  </Marker_Data>
</CellCounter_Marker_File>
"""


def test_cellcounter(tmp_path):
    path = tmp_path / "CellCounter_stack.xml"
    path.write_text(CELLCOUNTER)
    raw = read_cellcounter_xml(path)
    np.testing.assert_array_equal(raw.coords, [[0, 20, 10], [2, 21, 11], [NAN, 6, 5]])
    assert raw.class_name.tolist() == ["nucleus", "nucleus", "Type 2"]
    assert raw.image.tolist() == ["stack 1"] * 3
    assert raw.z_is_stack_position


@pytest.mark.parametrize(
    "text, message",
    [
        ("<a><b>", "not valid XML"),
        ("<Root><Other/></Root>", "no <Marker_Type>"),
        ("<R><Marker_Type><Type>1</Type></Marker_Type></R>", "no markers"),
        ("<R><Marker_Type><Marker><MarkerX>1</MarkerX></Marker></Marker_Type></R>", "lacks <MarkerY>"),
        ("<R><Marker_Type><Marker><MarkerX>a</MarkerX><MarkerY>1</MarkerY></Marker></Marker_Type></R>",
         "<MarkerX> must be a number"),
        ("<R><Marker_Type><Marker><MarkerX>1</MarkerX><MarkerY>1</MarkerY><MarkerZ>0</MarkerZ></Marker>"
         "</Marker_Type></R>", "1-based"),
    ],
)
def test_cellcounter_errors(tmp_path, text, message):
    path = tmp_path / "c.xml"
    path.write_text(text)
    with pytest.raises(PointsError, match=message):
        read_cellcounter_xml(path)


# ------------------------------------------------------------------ detection


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("a.csv", "index,axis-0,axis-1\n0,1,2\n", "napari"),
        ("a.csv", "x,y\n1,2\n", "csv"),
        ("a.txt", "image,z,y,x,class\na,,1,2,n\n", "csv"),
        ("a.geojson", "{}", "qupath"),
        ("export", '[{"type": "Feature"}]', "qupath"),
        ("a.xml", "<x/>", "cellcounter"),
        ("markers", "<?xml version='1.0'?><x/>", "cellcounter"),
    ],
)
def test_detect_format(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    assert detect_format(path) == expected


def test_read_point_file_dispatch_and_errors(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("index,axis-0,axis-1\n0,1,2\n")
    assert read_point_file(path).format == "napari"
    assert read_point_file(path, fmt="csv").format == "csv"
    with pytest.raises(ConfigError, match="--format must be one of auto, csv, napari, qupath, cellcounter"):
        read_point_file(path, fmt="excel")
    with pytest.raises(PointsError, match="does not exist"):
        read_point_file(tmp_path / "missing.csv")
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(PointsError, match="empty"):
        read_point_file(empty)
    blank = tmp_path / "b.csv"
    blank.write_text("\n\n")
    with pytest.raises(PointsError, match="empty"):
        read_point_file(blank)
