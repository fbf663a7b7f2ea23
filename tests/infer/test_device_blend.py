"""Blending on the model's device: the same rows as the host blender, outputs never copied per tile.

On this CPU-only machine the device code runs with torch tensors on the CPU (``blend_on="cpu"``)
and onnxruntime's IO binding writes into torch memory on the CPU provider; the ``gpu`` tests run
the same comparison on CUDA.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pointseg_cli.errors import ModelError
from pointseg_cli.export.onnx import export_module
from pointseg_cli.infer.device_blend import torch_device_for
from pointseg_cli.infer.predictors import OrtPredictor, TorchPredictor
from pointseg_cli.infer.segment import SegmentOptions, segment_array
from pointseg_cli.infer.stream import Rows, run_stream
from pointseg_cli.infer.tiling import make_grid
from tests.infer.conftest import make_meta, tiny_net
from tests.infer.test_segment_instances import _meta, _WithCentres

ALL = ("labels", "probabilities", "logits", "centers")


def _stream(pred, image: np.ndarray, tile, *, blend_on, outputs=ALL, overlap=0.5, batch_size=3) -> dict:
    grid = make_grid(image.shape, tile, overlap=overlap, divisor=8)
    got: dict[str, list] = {k: [] for k in outputs}

    def sink(rows: Rows) -> None:
        for k in outputs:
            got[k].append(getattr(rows, k))

    run_stream(lambda lo, hi: image[lo:hi, ..., None], lambda raw: raw.astype(np.float32), pred, grid, sink,
               outputs=outputs, batch_size=batch_size, blend_on=blend_on)
    return {k: np.concatenate(v, axis=1 if k in ("probabilities", "logits") else 0) for k, v in got.items()}


def _check_same(host: dict, dev: dict) -> None:
    assert host.keys() == dev.keys()
    # labels are argmax of the same sums added in another order: equal except at rounding ties
    assert np.mean(host["labels"] == dev["labels"]) > 0.9999
    for k in host:
        assert host[k].shape == dev[k].shape and host[k].dtype == dev[k].dtype, k
        if k != "labels":
            np.testing.assert_allclose(dev[k].astype(np.float32), host[k].astype(np.float32), atol=2e-3, err_msg=k)


@pytest.mark.parametrize("ndim", [2, 3])
def test_device_blending_matches_the_host_blender(ndim):
    rng = np.random.default_rng(ndim)
    shape = (37, 21, 45) if ndim == 3 else (70, 53)
    image = (rng.normal(size=shape) * 3).astype(np.float32)  # contrast enough for both classes
    pred = TorchPredictor(_WithCentres(ndim).eval(), _meta(ndim, centres=True))
    tile = pred.metadata.tile
    host = _stream(pred, image, tile, blend_on="host")
    dev = _stream(pred, image, tile, blend_on="cpu")
    _check_same(host, dev)
    assert host["labels"].shape == shape and len(np.unique(host["labels"])) > 1


def test_onnx_outputs_bound_to_torch_memory_match_predict(tmp_path):
    path = export_module(_WithCentres(3).eval(), _meta(3, centres=True), tmp_path / "c.onnx").path
    pred = OrtPredictor(path, device="cpu")
    x = np.random.default_rng(0).random((2, 1, 16, 32, 32), dtype=np.float32)
    out = pred.predict_device(x, centers=True)
    assert isinstance(out, torch.Tensor) and out.device.type == "cpu" and tuple(out.shape) == (2, 3, 16, 32, 32)
    both = pred.predict_all(x)
    np.testing.assert_allclose(out[:, :2].numpy(), both["logits"], atol=1e-6)
    np.testing.assert_allclose(out[:, 2:].numpy(), both["centers"], atol=1e-6)
    np.testing.assert_allclose(pred.predict_device(x).numpy(), pred.predict(x), atol=1e-6)
    # whole stream through IO binding on the CPU provider
    image = (np.random.default_rng(1).normal(size=(40, 50, 36)) * 3).astype(np.float32)
    _check_same(_stream(pred, image, (16, 32, 32), blend_on="host"), _stream(pred, image, (16, 32, 32), blend_on="cpu"))


def test_asking_for_centres_of_a_model_without_them_is_a_model_error(tmp_path):
    path = export_module(tiny_net(2), make_meta(2), tmp_path / "m.onnx").path
    with pytest.raises(ModelError, match="no centre output"):
        OrtPredictor(path, device="cpu").predict_device(np.zeros((1, 1, 16, 16), np.float32), centers=True)


def test_on_the_cpu_blending_stays_on_the_host(tmp_path):
    # auto: the host blender on the CPU (no torch round trip for nothing); the GPU only when the model runs there
    path = export_module(tiny_net(2), make_meta(2), tmp_path / "m.onnx").path
    assert torch_device_for(OrtPredictor(path, device="cpu")) is None
    assert torch_device_for(TorchPredictor(tiny_net(2), make_meta(2))) is None

    class NoDevice:  # a predictor without predict_device is blended on the host
        on_cuda = True

    assert torch_device_for(NoDevice()) is None

    class OrtGpuBesideCpuTorch(NoDevice):  # onnxruntime on CUDA, torch without it: blend on the host, no crash
        def predict_device(self, batch, *, centers=False): ...

    expected = "cuda:0" if torch.cuda.is_available() else None
    assert torch_device_for(OrtGpuBesideCpuTorch()) == expected


gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_cuda_blending_matches_the_host_and_is_the_default_on_a_gpu(tmp_path):
    path = export_module(_WithCentres(3).eval(), _meta(3, centres=True), tmp_path / "c.onnx").path
    pred = OrtPredictor(path, device="cuda")
    assert torch_device_for(pred) == "cuda"
    image = np.random.default_rng(2).random((40, 70, 52), dtype=np.float32)
    _check_same(_stream(pred, image, (16, 32, 32), blend_on="host"),
                _stream(pred, image, (16, 32, 32), blend_on=None))
    cpu = segment_array(image, OrtPredictor(path, device="cpu"), options=SegmentOptions()).labels
    assert np.mean(segment_array(image, pred, options=SegmentOptions()).labels == cpu) > 0.999
