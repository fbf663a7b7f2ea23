"""run_annotate_import: settings validated up front, points files or masks, CSV written."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pointseg_cli.annotate import AnnotateImportConfig, run_annotate_import
from pointseg_cli.errors import ConfigError, InputError
from pointseg_cli.io.points import read_points_csv


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "xls"}, "--format must be one of"),
        ({"classes": ("Cell", "cell")}, "names a class twice"),
        ({"class_map": (("a", "b"), ("A", "c"))}, "--class-map maps a class twice"),
        ({"jitter": -1.0}, "--jitter must be >= 0"),
        ({"mask_class": " "}, "--mask-class must not be empty"),
    ],
)
def test_config_is_validated(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        AnnotateImportConfig(**kwargs)


def test_config_normalises_classes_and_map():
    cfg = AnnotateImportConfig(classes=["a", "b"], class_map={"x": "a"})
    assert cfg.classes == ("a", "b") and cfg.class_map == (("x", "a"),) and cfg.class_mapping == {"x": "a"}
    assert AnnotateImportConfig(classes=()).classes is None


def test_run_writes_points_and_reports_the_file(images, tmp_path):
    (tmp_path / "a.csv").write_text("x,y,class\n1,2,NUC\n")
    out = tmp_path / "p.csv"
    res = run_annotate_import([tmp_path / "a.csv"], out=out, images=images,
                              config=AnnotateImportConfig(classes=("nuc",)))
    assert res.out == out and read_points_csv(out).class_name.tolist() == ["nuc"]


def test_run_from_masks_maps_and_matches_the_mask_class(images, tmp_path):
    lab = np.zeros((20, 30), np.uint8)
    lab[2:9, 3:10] = 1
    (tmp_path / "m").mkdir()
    tifffile.imwrite(tmp_path / "m" / "a.labels.tif", lab)
    out = tmp_path / "p.csv"
    cfg = AnnotateImportConfig(mask_class="nucleus", class_map={"NUCLEUS": "Cell"}, classes=("cell",))
    res = run_annotate_import(out=out, from_masks=tmp_path / "m", config=cfg)
    assert res.table.class_names == ("cell",) and read_points_csv(out).class_name.tolist() == ["cell"]
    with pytest.raises(InputError, match=r"every point the class 'nucleus' \(--mask-class\) but --classes is"):
        run_annotate_import(out=out, from_masks=tmp_path / "m", config=AnnotateImportConfig(classes=("a", "b")))
    with pytest.raises(InputError, match="either points files or --from-masks"):
        run_annotate_import([tmp_path / "x.csv"], out=out, from_masks=tmp_path / "m")
    with pytest.raises(InputError, match="--images is required"):
        run_annotate_import([tmp_path / "x.csv"], out=out)
