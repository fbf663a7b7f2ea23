from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.cli.app import app
from pointseg_cli.io.points import read_points_csv


@pytest.fixture
def data(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", np.zeros((20, 30), np.uint8))
    tifffile.imwrite(images / "v.tif", np.zeros((5, 20, 30), np.uint8))
    return tmp_path


def _run(runner, args):
    return runner.invoke(app, ["annotate-import", *map(str, args)], terminal_width=200)


def _left(folder):
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def test_imports_mixed_formats(runner, data):
    (data / "a.csv").write_text("index,axis-0,axis-1,class\n0,1,2,nucleus\n1,3,4,cell\n")
    (data / "v.geojson").write_text(
        '{"type":"FeatureCollection","features":[{"type":"Feature","geometry":{"type":"Point",'
        '"coordinates":[5.5,6.5],"plane":{"z":2}},"properties":{"classification":{"name":"nucleus"}}}]}'
    )
    out = data / "points.csv"
    res = _run(runner, [data / "a.csv", data / "v.geojson", "--images", data / "images", "--classes",
                        "nucleus,cell", "--out", out])
    assert res.exit_code == 0, res.output
    assert "3 points" in res.output and "nucleus" in res.output
    t = read_points_csv(out, classes=["nucleus", "cell"])
    assert t.image.tolist() == ["a", "a", "v"]
    assert out.read_text().splitlines()[1:] == ["a,,1,2,nucleus", "a,,3,4,cell", "v,2,6,5,nucleus"]


def test_drop_invalid_reports_counts(runner, data):
    (data / "a.csv").write_text("x,y\n1,1\n1,1\n100,1\n2,2\n")
    out = data / "p.csv"
    res = _run(runner, [data / "a.csv", "--images", data / "images", "--drop-invalid", "--out", out])
    assert res.exit_code == 0, res.output
    assert "dropped 1 point(s) outside the image and 1 duplicate(s)" in res.output
    assert len(read_points_csv(out)) == 2


def test_from_masks(runner, data):
    masks = data / "masks"
    masks.mkdir()
    lab = np.zeros((20, 30), np.uint8)
    lab[2:9, 3:10] = 1
    tifffile.imwrite(masks / "a.labels.tif", lab)
    out = data / "p.csv"
    res = _run(runner, ["--from-masks", masks, "--images", data / "images", "--mask-class", "nuc", "--jitter", "2",
                        "--seed", "3", "--out", out])
    assert res.exit_code == 0, res.output
    assert "1 image(s) without points: v" in res.output
    t = read_points_csv(out)
    assert t.class_names == ("nuc",) and len(t) == 1
    y, x = t.pixel_coords(2)[0]
    assert lab[y, x] == 1


BAD = [
    ("x,y\n100,1\n", [], "1 point(s) lie outside image 'a' (Y, X) = (20, 30), e.g. (y=1, x=100); pass --drop-invalid"),
    ("x,y,z\n1,1,1\n", [], "has 1 3-D point(s) (with z) but image 'a' is 2-D (20, 30)"),
    ("x,y,class\n1,1,tumor\n", ["--classes", "nucleus"], "has classes ['tumor'] not among --classes ['nucleus']"),
    ("", [], "points file 'a.csv' is empty"),
    ("x,y\n", [], "points file 'a.csv' has a header but no points"),
    ("x,y\n1,1\n1.2,1\n", [], "1 duplicate point(s) in image 'a'"),
    ("x,y\n1,one\n", [], "a.csv line 2: y must be a number; found 'one'"),
    ("x,y\n1,1\n", ["--format", "excel"], "--format must be one of auto, csv, napari, qupath, cellcounter; got"),
    ("x,y\n1,1\n", ["--classes", "a,,b"], "--classes has an empty name"),
    ("x,y\n1,1\n", ["--image", "zzz"], "--image 'zzz': no image with stem 'zzz'"),
]


@pytest.mark.parametrize("text, extra, message", BAD)
def test_bad_input_exits_2_and_leaves_nothing(runner, data, text, extra, message):
    (data / "a.csv").write_text(text)
    out = data / "points.csv"
    before = _left(data)
    res = _run(runner, [data / "a.csv", "--images", data / "images", "--out", out, *extra])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    assert not out.exists() and _left(data) == before


def test_existing_output_untouched_on_error(runner, data):
    out = data / "points.csv"
    out.write_text("old\n")
    (data / "a.csv").write_text("x,y\n100,1\n")
    res = _run(runner, [data / "a.csv", "--images", data / "images", "--out", out])
    assert res.exit_code == 2 and out.read_text() == "old\n"


def test_usage_errors(runner, data):
    out = data / "p.csv"
    (data / "a.csv").write_text("x,y\n1,1\n")
    res = _run(runner, [data / "a.csv", "--out", out])
    assert res.exit_code == 2 and "--images is required" in res.output
    res = _run(runner, [data / "a.csv", "--from-masks", data, "--out", out])
    assert res.exit_code == 2 and "either points files or --from-masks" in res.output
    res = _run(runner, [data / "missing.csv", "--images", data / "images", "--out", out])
    assert res.exit_code == 2 and "does not exist" in res.output
    res = _run(runner, ["--images", data / "images", "--out", out])
    assert res.exit_code == 2 and "no points files given" in res.output
    assert not out.exists()


def test_masks_beside_images_and_quiet(runner, data):
    images = data / "images"
    lab = np.zeros((20, 30), np.uint8)
    lab[2:9, 3:10] = 1
    lab[12:18, 20:28] = 2
    tifffile.imwrite(images / "a.labels.tif", lab)  # the dataset folder holds a.tif beside its labels
    out = data / "p.csv"
    res = runner.invoke(app, ["--quiet", "annotate-import", "--from-masks", str(images), "--images", str(images),
                              "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == ""
    assert read_points_csv(out).image.tolist() == ["a", "a"]


def test_class_map_and_case_insensitive_classes(runner, data):
    (data / "a.csv").write_text("x,y,class\n1,2,Tumor\n3,4,NUCLEUS\n")
    out = data / "p.csv"
    res = _run(runner, [data / "a.csv", "--images", data / "images", "--classes", "nucleus,tumour",
                        "--class-map", "tumor=tumour", "--out", out])
    assert res.exit_code == 0, res.output
    assert out.read_text().splitlines()[1:] == ["a,,2,1,tumour", "a,,4,3,nucleus"]
    assert read_points_csv(out, classes=["nucleus", "tumour"]).class_ids().tolist() == [2, 1]


@pytest.mark.parametrize(
    "value, message",
    [("tumor", "--class-map must be pairs like"), ("a=b,A=c", "--class-map maps a class twice"),
     ("a=b,a=c", "--class-map maps 'a' twice")],
)
def test_bad_class_map_exits_2(runner, data, value, message):
    (data / "a.csv").write_text("x,y\n1,1\n")
    res = _run(runner, [data / "a.csv", "--images", data / "images", "--class-map", value, "--out", data / "p.csv"])
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
