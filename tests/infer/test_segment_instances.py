"""segment_file's instance step: centres blended like the logits, ids and object table written atomically."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
from torch import nn

from pointseg_cli.errors import ConfigError
from pointseg_cli.infer.instance_outputs import resolve_instance_method
from pointseg_cli.infer.instances import InstanceConfig, label_instances
from pointseg_cli.infer.predictors import TorchPredictor
from pointseg_cli.infer.segment import SegmentOptions, segment_array, segment_file
from pointseg_cli.infer.stream import run_stream
from pointseg_cli.infer.tiling import make_grid
from pointseg_cli.model.metadata import ModelMetadata
from tests.infer.conftest import NONE_NORM, tiny_net


class _WithCentres(nn.Module):
    """Logits of a tiny net plus a centre map that is a fixed smooth function of the input."""

    def __init__(self, ndim: int) -> None:
        super().__init__()
        self.net = tiny_net(ndim, n_out=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.net(x), "centers": torch.sigmoid(x[:, :1] * 4.0 - 2.0)}


def _meta(ndim: int, *, centres: bool) -> ModelMetadata:
    tile = (16, 32, 32) if ndim == 3 else (32, 32)
    return ModelMetadata(classes=("a",), ndim=ndim, channels=1, normalization=NONE_NORM, tile=tile, divisor=8,
                         outputs=("logits", "centers") if centres else ("logits",))


def _blobs(shape: tuple[int, ...]) -> np.ndarray:
    """Two touching bright balls (centre values 1 and 0.8 falling to 0 at radius 6) on a dark background.

    Unequal heights, so no voxel is equally close to both centres (no watershed ties that
    float rounding of the blend could break either way).
    """
    grid = np.indices(shape).astype(np.float32)
    mid = [s / 2 for s in shape]
    out = np.zeros(shape, np.float32)
    for dx, top in ((-5.0, 1.0), (5.3, 0.8)):
        c = list(mid)
        c[-1] += dx
        r = np.sqrt(sum((g - m) ** 2 for g, m in zip(grid, c, strict=True)))
        out = np.maximum(out, top * np.clip(1 - r / 6, 0, 1))
    return out


def test_auto_uses_centres_when_the_model_has_them_and_centres_without_head_is_a_config_error() -> None:
    assert resolve_instance_method("auto", _meta(2, centres=True))[0] == "centers"
    assert resolve_instance_method("auto", _meta(2, centres=False)) == ("distance", "the model has no centre output")
    assert resolve_instance_method("components", _meta(2, centres=False))[0] == "components"
    with pytest.raises(ConfigError, match="distance, components, none"):
        resolve_instance_method("centers", _meta(2, centres=False))
    with pytest.raises(ConfigError, match="instance method"):
        SegmentOptions(instances="blobs")


def test_streamed_centres_equal_the_untiled_map_where_the_map_is_pointwise() -> None:
    # The centre "head" is pointwise, so any correct blend (weights summing to one) gives it back exactly.
    image = np.random.default_rng(0).random((70, 90)).astype(np.float32)
    pred = TorchPredictor(_WithCentres(2), _meta(2, centres=True))
    grid = make_grid(image.shape, (32, 32), overlap=0.25, divisor=8)
    got = np.zeros(image.shape, np.float32)
    labels = np.zeros(image.shape, np.uint8)

    def sink(rows) -> None:
        got[rows.start : rows.stop] = rows.centers
        labels[rows.start : rows.stop] = rows.labels

    run_stream(lambda a, b: image[a:b, :, None], lambda x: x, pred, grid, sink, outputs=("labels", "centers"))
    want = 1 / (1 + np.exp(-(image * 4 - 2)))
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the extra channel does not change the class map
    np.testing.assert_array_equal(labels, segment_array(image, pred, options=SegmentOptions(tile=(32, 32))).labels)


def test_segment_file_writes_instances_and_objects_from_the_centre_map(tmp_path) -> None:
    vol = _blobs((12, 24, 40))
    src = tmp_path / "v.tif"
    tifffile.imwrite(src, vol)

    class Thresh(_WithCentres):  # class map = bright voxels, so the map is known
        def forward_heads(self, x):
            fg = (x[:, :1] > 0.15).float()
            return {"logits": torch.cat([1 - fg, fg], dim=1), "centers": x[:, :1]}

    pred = TorchPredictor(Thresh(3), _meta(3, centres=True))
    res = segment_file(src, tmp_path / "out", pred, options=SegmentOptions(instances="auto", tile=(16, 32, 32)),
                       voxel_size=(2.0, 0.5, 0.5))
    assert res.instance_method == "centers" and res.n_objects == 2
    ids = tifffile.imread(res.instances)
    assert ids.dtype == np.uint32 and set(np.unique(ids)) == {0, 1, 2}
    labels = tifffile.imread(res.labels)
    want = label_instances(labels, vol, config=InstanceConfig(method="centers", spacing=(2.0, 0.5, 0.5)))
    np.testing.assert_array_equal(ids, want)
    with tifffile.TiffFile(res.instances) as tf:
        assert tf.series[0].axes == "ZYX"
        xml = tf.ome_metadata
        assert 'PhysicalSizeZ="2.0"' in xml
    desc = json.loads(xml.split("<Description>")[1].split("</Description>")[0].replace("&quot;", '"'))
    assert desc["instances"]["method"] == "centers" and desc["pointseg"]["input"] == "v.tif"
    rows = res.objects.read_text().splitlines()
    assert rows[0].startswith("id,class,z,y,x,z_um") and len(rows) == 3 and rows[1].split(",")[1] == "a"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["v.instances.tif", "v.labels.tif",
                                                                     "v.objects.csv"]


def test_without_centres_auto_uses_distance_and_none_writes_no_instances(tmp_path, pred3d) -> None:
    src = tmp_path / "v.tif"
    tifffile.imwrite(src, np.random.default_rng(1).random((10, 20, 24)).astype(np.float32))
    res = segment_file(src, tmp_path / "a", pred3d, options=SegmentOptions(instances="auto"))
    assert res.instance_method == "distance" and res.instances.is_file() and res.objects.is_file()
    res = segment_file(src, tmp_path / "b", pred3d)  # the library default: no instances
    assert res.instances is None and sorted(p.name for p in (tmp_path / "b").iterdir()) == ["v.labels.tif"]


def test_a_failure_in_the_instance_step_leaves_no_file(tmp_path, monkeypatch) -> None:
    import pointseg_cli.infer.instances as instances

    src = tmp_path / "v.tif"
    tifffile.imwrite(src, _blobs((12, 24, 40)))
    pred = TorchPredictor(_WithCentres(3), _meta(3, centres=True))

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(instances, "instances_from_maps", boom)
    with pytest.raises(OSError, match="disk full"):
        segment_file(src, tmp_path / "out", pred, options=SegmentOptions(instances="centers", preview=True))
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize(("kw", "n"), [({}, 2), ({"peak_threshold": 0.9}, 1), ({"min_distance": 12.0}, 1)])
def test_marker_settings_reach_the_instance_step_and_are_recorded(tmp_path, kw, n) -> None:
    # the two centres (heights 1 and 0.8) lie 10.3 px apart: a threshold above 0.8 or a minimum
    # distance above 10.3 px leaves one marker, so the touching pair becomes one object
    src = tmp_path / "v.tif"
    tifffile.imwrite(src, _blobs((12, 24, 40)))

    class Thresh(_WithCentres):
        def forward_heads(self, x):
            fg = (x[:, :1] > 0.15).float()
            return {"logits": torch.cat([1 - fg, fg], dim=1), "centers": x[:, :1]}

    pred = TorchPredictor(Thresh(3), _meta(3, centres=True))
    res = segment_file(src, tmp_path / "out", pred, options=SegmentOptions(instances="auto", tile=(16, 32, 32), **kw))
    assert res.n_objects == n
    with tifffile.TiffFile(res.instances) as tf:
        xml = tf.ome_metadata
    desc = json.loads(xml.split("<Description>")[1].split("</Description>")[0].replace("&quot;", '"'))
    assert desc["instances"] == {"method": "centers", "min_distance": kw.get("min_distance", 3.0),
                                 "threshold": kw.get("peak_threshold", 0.3)}


@pytest.mark.parametrize("kw", [{"min_distance": float("nan")}, {"min_distance": -1.0},
                                {"peak_threshold": float("inf")}])
def test_bad_marker_settings_are_config_errors(kw) -> None:
    with pytest.raises(ConfigError, match="must be a finite number >= 0"):
        SegmentOptions(instances="auto", **kw)
