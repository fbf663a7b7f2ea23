"""Reading points files: image and class assignment, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tifffile

from pointseg_cli.annotate import image_infos, import_points
from pointseg_cli.errors import ConfigError, InputError, PointsError

NAN = math.nan


def _write(path, text):
    path.write_text(text)
    return path


def test_image_infos_reads_metadata(images):
    infos = image_infos(images)
    assert sorted(infos) == ["a", "b", "mc", "v"]
    assert infos["v"].spatial_shape == (5, 20, 30) and infos["mc"].channels == 2


def test_image_infos_duplicate_stem(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "a.tiff", np.zeros((4, 4), np.uint8))
    with pytest.raises(InputError, match="two images share the stem 'a'"):
        image_infos(tmp_path)


def test_image_column_file_stem_and_image_option(images, tmp_path):
    col = _write(tmp_path / "any.csv", "image,x,y,class\nb.ome.tif,1,2,n\na,3,4,n\n")
    by_name = _write(tmp_path / "a.points.csv", "x,y\n5,6\n")
    res = import_points([col, by_name], images=images)
    t = res.table
    assert t.image.tolist() == ["a", "a", "b"]  # grouped by image, input order within
    np.testing.assert_array_equal(t.coords, [[NAN, 4, 3], [NAN, 6, 5], [NAN, 2, 1]])
    assert t.class_name.tolist() == ["n", "object", "n"] and t.class_names == ("n", "object")
    assert res.images == {"a": (20, 30), "b": (20, 30)}
    assert res.images_without_points == ("mc", "v")
    forced = import_points([by_name], images=images, image="b.ome.tif")
    assert forced.table.image.tolist() == ["b"]


def test_unmatched_file_and_unknown_image(images, tmp_path):
    orphan = _write(tmp_path / "zzz.csv", "x,y\n1,2\n")
    with pytest.raises(PointsError, match="cannot tell which image 'zzz.csv' belongs to"):
        import_points([orphan], images=images)
    with pytest.raises(PointsError, match="--image 'q': no image with stem 'q'"):
        import_points([orphan], images=images, image="q")
    col = _write(tmp_path / "c.csv", "image,x,y\nnope,1,2\n")
    with pytest.raises(PointsError, match=r"refers to image\(s\) \['nope'\] not found"):
        import_points([col], images=images)
    half = _write(tmp_path / "h.csv", "image,x,y\na,1,2\n,3,4\n")
    with pytest.raises(PointsError, match="1 of 2 points have no image name"):
        import_points([half], images=images)


def test_class_rules(images, tmp_path):
    plain = _write(tmp_path / "a.csv", "x,y\n1,2\n")
    assert import_points([plain], images=images, classes=["nucleus"]).table.class_name.tolist() == ["nucleus"]
    assert import_points([plain], images=images, default_class="cell").table.class_names == ("cell",)
    with pytest.raises(PointsError, match="no class and --classes lists 2 classes"):
        import_points([plain], images=images, classes=["p", "q"])
    typed = _write(tmp_path / "b.csv", "x,y,class\n1,2,q\n3,4,r\n")
    with pytest.raises(PointsError, match=r"has classes \['r'\] not among --classes \['p', 'q'\]"):
        import_points([typed], images=images, classes=["p", "q"])
    assert import_points([typed], images=images, classes=["r", "q"]).table.class_ids().tolist() == [2, 1]


def test_dimension_mismatches(images, tmp_path):
    z2d = _write(tmp_path / "a.csv", "x,y,z\n1,2,0\n")
    with pytest.raises(PointsError, match=r"1 3-D point\(s\) \(with z\) but image 'a' is 2-D \(20, 30\)"):
        import_points([z2d], images=images)
    no_z = _write(tmp_path / "v.csv", "x,y\n1,2\n")
    with pytest.raises(PointsError, match=r"2-D point\(s\) \(no z\) but image 'v' is 3-D"):
        import_points([no_z], images=images)


def _cellcounter(path, image, markers):
    body = "".join(
        f"<Marker><MarkerX>{x}</MarkerX><MarkerY>{y}</MarkerY><MarkerZ>{z}</MarkerZ></Marker>" for x, y, z in markers
    )
    path.write_text(
        f"<CellCounter_Marker_File><Image_Properties><Image_Filename>{image}</Image_Filename></Image_Properties>"
        f"<Marker_Data><Marker_Type><Type>1</Type>{body}</Marker_Type></Marker_Data></CellCounter_Marker_File>"
    )
    return path


def test_cellcounter_stack_positions(images, tmp_path):
    flat = _cellcounter(tmp_path / "c1.xml", "a.tif", [(1, 2, 1)])
    assert np.isnan(import_points([flat], images=images).table.coords[0, 0])
    wrong = _cellcounter(tmp_path / "c2.xml", "a.tif", [(1, 2, 2)])
    with pytest.raises(PointsError, match="3-D point"):
        import_points([wrong], images=images)
    # ZCYX hyperstack with 2 channels: positions 1,2 are z=0; 5,6 are z=2
    hyper = _cellcounter(tmp_path / "c3.xml", "mc.tif", [(1, 2, 1), (3, 4, 6)])
    np.testing.assert_array_equal(import_points([hyper], images=images).table.coords[:, 0], [0, 2])
    vol = _cellcounter(tmp_path / "c4.xml", "v.tif", [(1, 2, 5)])
    assert import_points([vol], images=images).table.coords[0].tolist() == [4, 2, 1]
    by_file = tmp_path / "CellCounter_a.xml"
    by_file.write_text("<R><Marker_Type><Type>1</Type><Marker><MarkerX>1</MarkerX><MarkerY>1</MarkerY>"
                       "</Marker></Marker_Type></R>")
    assert import_points([by_file], images=images).table.image.tolist() == ["a"]
    renamed = _cellcounter(tmp_path / "CellCounter_v.xml", "old name.tif", [(1, 2, 5)])
    assert import_points([renamed], images=images).table.image.tolist() == ["v"]  # Image_Filename is a hint
    lost = _cellcounter(tmp_path / "markers.xml", "old name.tif", [(1, 2, 5)])
    with pytest.raises(PointsError, match=r"refers to image\(s\) \['old name'\] not found"):
        import_points([lost], images=images)


def test_progress_and_early_format_check(images, tmp_path):
    calls = []
    import_points([_write(tmp_path / "a.csv", "x,y\n1,2\n")], images=images, progress=lambda *a: calls.append(a))
    assert calls == [("points files", 0, 1)]
    with pytest.raises(ConfigError, match="--format must be one of"):
        import_points([tmp_path / "missing.csv"], images=tmp_path / "nowhere", fmt="xls")


def test_out_of_bounds_and_duplicates(images, tmp_path):
    oob = _write(tmp_path / "a.csv", "x,y\n29.4,19.4\n29.6,0\n-0.6,3\n")
    msg = r"2 point\(s\) lie outside image 'a' \(Y, X\) = \(20, 30\), e.g. \(y=0, x=29.6\)"
    with pytest.raises(PointsError, match=msg):
        import_points([oob], images=images)
    res = import_points([oob], images=images, drop_invalid=True)
    assert len(res.table) == 1 and res.dropped_out_of_bounds == 2 and res.dropped_duplicates == 0
    dup1 = _write(tmp_path / "d1.csv", "image,x,y,class\na,1,1,p\na,5,5,p\n")
    dup2 = _write(tmp_path / "d2.csv", "image,x,y,class\na,1.2,0.8,q\nb,1,1,p\n")
    with pytest.raises(PointsError, match=r"1 duplicate point\(s\) in image 'a'.*\(1, 1\)"):
        import_points([dup1, dup2], images=images)
    res = import_points([dup1, dup2], images=images, drop_invalid=True)
    assert res.dropped_duplicates == 1
    assert res.table.class_name.tolist() == ["p", "p", "p"]  # the first one is kept


def test_no_inputs_and_nothing_left(images, tmp_path):
    with pytest.raises(InputError, match="no points files"):
        import_points([], images=images)
    oob = _write(tmp_path / "a.csv", "x,y\n100,100\n")
    with pytest.raises(PointsError, match="no valid points remain"):
        import_points([oob], images=images, drop_invalid=True)


def test_classes_match_without_regard_to_case(images, tmp_path):
    typed = _write(tmp_path / "a.csv", "x,y,class\n1,2,Nucleus\n3,4,CELL\n5,6,nucleus\n")
    t = import_points([typed], images=images, classes=["nucleus", "Cell"]).table
    assert t.class_name.tolist() == ["nucleus", "Cell", "nucleus"]  # the spelling of --classes wins
    assert t.class_names == ("nucleus", "Cell") and t.class_ids().tolist() == [1, 2, 1]
    unmatched = import_points([typed], images=images).table  # without --classes names stay as written
    assert unmatched.class_names == ("CELL", "Nucleus", "nucleus")


def test_class_map_renames_before_matching(images, tmp_path):
    typed = _write(tmp_path / "a.csv", "x,y,class\n1,2,Tumor\n3,4,lymph\n")
    res = import_points([typed], images=images, classes=["tumour", "immune"],
                        class_map={"tumor": "Tumour", "Lymph": "immune"})
    assert res.table.class_name.tolist() == ["tumour", "immune"]
    plain = _write(tmp_path / "b.csv", "image,x,y\na,1,2\n")
    mapped = import_points([plain], images=images, class_map={"Object": "nucleus"})
    assert mapped.table.class_names == ("nucleus",)  # the default class is renamed too
    with pytest.raises(PointsError, match=r"classes \['lymph'\] not among --classes \['Tumor'\]; rename them"):
        import_points([typed], images=images, classes=["Tumor"], class_map={"x": "y"})
