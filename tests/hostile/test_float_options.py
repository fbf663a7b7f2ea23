"""Every floating-point option of every command refuses nan and ±inf with one line, before any work."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tests.hostile.conftest import IMAGE, invoke, only_line, snapshot


@pytest.fixture
def data(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    tifffile.imwrite(images / "a.tif", IMAGE)
    masks = tmp_path / "masks"
    masks.mkdir()
    labels = np.zeros(IMAGE.shape, np.uint16)
    labels[10:20, 10:20] = 1
    tifffile.imwrite(masks / "a.tif", labels)
    (tmp_path / "points.csv").write_text("image,z,y,x,class\na,,15,15,cell\n")
    return tmp_path


#: command line with {v} where the value goes; every float option of every command.
OPTIONS = {
    "segment --overlap": "segment {d}/images -o {d}/out --model test-2d-gray --overlap {v}",
    "objectness --w": "objectness {d}/points.csv {d}/images -o {d}/out --w {v}",
    "objectness --kappa": "objectness {d}/points.csv {d}/images -o {d}/out --kappa {v} --diffuse 3",
    "objectness --low": "objectness {d}/points.csv {d}/images -o {d}/out --low {v}",
    "objectness --high": "objectness {d}/points.csv {d}/images -o {d}/out --high {v}",
    "objectness --spacing": "objectness {d}/points.csv {d}/images -o {d}/out --spacing 1,{v}",
    "evaluate --iou-threshold": "evaluate {d}/masks {d}/masks --iou-threshold {v}",
    "annotate-import --jitter": "annotate-import --from-masks {d}/masks --images {d}/images --jitter {v} -o {d}/p.csv",
    "train --lr": "train {d}/points.csv {d}/images -o {d}/out --lr {v}",
    "train --bg-weight": "train {d}/points.csv {d}/images -o {d}/out --bg-weight {v}",
    "train --w": "train {d}/points.csv {d}/images -o {d}/out --w {v}",
    "train --gauss-sigma": "train {d}/points.csv {d}/images -o {d}/out --gauss-sigma {v}",
    "train --val-fraction": "train {d}/points.csv {d}/images -o {d}/out --val-fraction {v}",
    "train --lambdas": "train {d}/points.csv {d}/images -o {d}/out --lambdas 1,{v},1",
    "train --beta": "train {d}/points.csv {d}/images -o {d}/out --beta 1,{v}",
    "export --tolerance": "export {d}/run -o {d}/out/m.onnx --tolerance {v}",
}


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_non_finite_float_option_is_one_line(runner, data, option, value):
    before = snapshot(data)
    args = OPTIONS[option].format(d=data, v=value).split()
    only_line(invoke(runner, *args))
    assert snapshot(data) == before
