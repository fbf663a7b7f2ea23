from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from pointseg_cli.errors import ConfigError, ModelError, ParityError
from pointseg_cli.export.onnx import export_module, export_onnx
from pointseg_cli.infer.predictors import OrtPredictor, TorchPredictor
from pointseg_cli.model.metadata import ModelMetadata, read_model_metadata


def _tiny2d(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 1)).eval()


META2D = ModelMetadata(classes=("cell",), ndim=2, channels=1, normalization={"method": "none"}, tile=(32, 32),
                       divisor=8)


def test_export_run_dir_parity_metadata_and_dynamic_axes(run_dir, tmp_path):
    out = tmp_path / "m.onnx"
    res = export_onnx(run_dir, out)
    assert res.path == out and out.is_file() and res.size_bytes == out.stat().st_size
    assert res.max_rel_error <= res.tolerance == 1e-4
    meta = read_model_metadata(out)
    assert meta.classes == ("nucleus", "cell") and meta.ndim == 3 and meta.channels == 1
    assert meta.tile == (16, 16, 16) and meta.divisor == 8 and meta.precision == "fp32"
    assert meta.normalization["low"] == 2.0
    proto = onnx.load(str(out))
    keys = {p.key for p in proto.metadata_props}
    for k in ("classes", "ndim", "channels", "normalization", "tile", "divisor", "version"):
        assert f"pointseg.{k}" in keys
    assert proto.opset_import[0].version == 17
    # the default training config has the centre head: a second output, declared in the metadata
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits", "centers"]
    assert meta.outputs == ("logits", "centers") and meta.has_centers
    # dynamic batch and spatial axes: a different batch and a non-training size run and match torch
    ort_pred = OrtPredictor(out, device="cpu")
    torch_pred = TorchPredictor.from_checkpoint(run_dir)
    x = np.random.default_rng(1).random((2, 1, 24, 16, 40), dtype=np.float32)
    np.testing.assert_allclose(ort_pred.predict(x), torch_pred.predict(x), atol=1e-4)
    got, want = ort_pred.predict_all(x), torch_pred.predict_all(x)
    assert set(got) == set(want) == {"logits", "centers"} and got["centers"].shape == (2, 1, 24, 16, 40)
    for name in got:
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)


def test_export_without_centre_head_has_logits_only(tmp_path):
    from pointseg_cli.model import build_model
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, crop=(16, 16, 16), losses=("pce", "img", "obj"))
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.pt", model=build_model(cfg).eval(), config=cfg)
    res = export_onnx(run, tmp_path / "plain.onnx")
    assert [o.name for o in onnx.load(str(res.path)).graph.output] == ["logits"]
    meta = read_model_metadata(res.path)
    assert meta.outputs == ("logits",) and not meta.has_centers
    pred = OrtPredictor(res.path, device="cpu")
    assert set(pred.predict_all(np.zeros((1, 1, 16, 16, 16), np.float32))) == {"logits"}


def test_fp16_export_is_looser_but_close(tmp_path):
    res = export_module(_tiny2d(), META2D, tmp_path / "h.onnx", precision="fp16")
    assert res.tolerance == 2e-2 and res.max_rel_error < 2e-2
    assert read_model_metadata(res.path).precision == "fp16"
    pred = OrtPredictor(res.path, device="cpu")
    out = pred.predict(np.zeros((1, 1, 40, 24), np.float32))
    assert out.dtype == np.float32 and out.shape == (1, 2, 40, 24)


def test_parity_failure_leaves_no_file(tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ParityError, match=r"max abs error .* relative .* > 1e-12"):
        export_module(_tiny2d(), META2D, out, precision="fp16", tolerance=1e-12)
    assert list(tmp_path.iterdir()) == []


def test_metadata_must_match_the_network(tmp_path):
    meta = ModelMetadata(classes=("a", "b"), ndim=2, channels=1, tile=(32, 32), divisor=8)  # 3 outputs expected
    with pytest.raises(ModelError, match="does not match"):
        export_module(_tiny2d(), meta, tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "int8"}, "precision must be one of fp32, fp16"),
    ({"opset": 19}, "opset must be between 7 and 18"),
    ({"tolerance": 0.0}, "tolerance must be > 0"),
])
def test_bad_options(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        export_module(_tiny2d(), META2D, tmp_path / "x.onnx", **kwargs)
