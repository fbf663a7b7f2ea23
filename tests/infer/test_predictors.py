from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli import devices
from pointseg_cli.errors import ConfigError, DeviceError, ModelError
from pointseg_cli.export.onnx import export_module
from pointseg_cli.infer.predictors import OrtPredictor, Predictor, TorchPredictor, make_predictor
from tests.infer.conftest import make_meta, tiny_net


@pytest.fixture
def onnx_2d(tmp_path):
    return export_module(tiny_net(2), make_meta(2), tmp_path / "m.onnx").path


def test_ort_and_torch_predictors_agree(onnx_2d, rng):
    ort_p = OrtPredictor(onnx_2d, device="cpu")
    torch_p = TorchPredictor(tiny_net(2), make_meta(2))
    assert isinstance(ort_p, Predictor) and isinstance(torch_p, Predictor)
    x = rng.random((3, 1, 40, 56), dtype=np.float32)
    np.testing.assert_allclose(ort_p.predict(x), torch_p.predict(x), atol=1e-5)
    assert ort_p.provider == "CPUExecutionProvider" and torch_p.provider == "torch-cpu"
    assert ort_p.metadata.classes == ("a", "b")


def test_auto_on_a_machine_without_gpu_uses_cpu(onnx_2d):
    assert OrtPredictor(onnx_2d, device="auto").provider == "CPUExecutionProvider"


def test_cuda_without_driver_is_a_clear_device_error(onnx_2d, monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_absent", lambda: True)
    with pytest.raises(DeviceError, match="no NVIDIA driver"):
        OrtPredictor(onnx_2d, device="cuda")


def test_cuda_session_that_falls_back_to_cpu_is_refused(onnx_2d, monkeypatch):
    """Even with a driver, the created session's providers decide (onnxruntime falls back silently)."""
    monkeypatch.setattr(devices, "nvidia_driver_absent", lambda: False)

    class FakeSession:
        def __init__(self, *args, **kwargs):
            pass

        def get_providers(self):
            return ["CPUExecutionProvider"]

    import onnxruntime

    monkeypatch.setattr(onnxruntime, "InferenceSession", FakeSession)
    with pytest.raises(DeviceError, match="no CUDAExecutionProvider"):
        OrtPredictor(onnx_2d, device="cuda")


def test_wrong_tile_shape_is_a_model_error(onnx_2d):
    with pytest.raises(ModelError, match=r"model expects tiles \(N, 1, Y, X\)"):
        OrtPredictor(onnx_2d, device="cpu").predict(np.zeros((1, 3, 32, 32), np.float32))


def test_make_predictor_checks_precision_and_device(onnx_2d):
    with pytest.raises(ConfigError, match="needs an fp16 ONNX model"):
        make_predictor(onnx_2d, precision="fp16")
    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda"):
        make_predictor(onnx_2d, device="gpu")
    assert make_predictor(onnx_2d, device="cpu").provider == "CPUExecutionProvider"


def test_make_predictor_from_a_run_dir_uses_torch(tmp_path):
    import torch

    from pointseg_cli.model import build_model
    from pointseg_cli.train.checkpoint import save_checkpoint
    from pointseg_cli.train.config import TrainConfig

    cfg = TrainConfig(arch="unet3d", ndim=3, base_filters=2, crop=(16, 16, 16))
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "best.pt", model=build_model(cfg), config=cfg)
    pred = make_predictor(tmp_path, device="cpu")
    assert pred.provider == "torch-cpu" and pred.metadata.tile == (16, 16, 16) and pred.metadata.divisor == 8
    assert pred.predict(np.zeros((1, 1, 16, 16, 16), np.float32)).shape == (1, 2, 16, 16, 16)


@pytest.mark.gpu
def test_cuda_provider_with_io_binding_matches_cpu(onnx_2d, rng):
    gpu = OrtPredictor(onnx_2d, device="cuda")
    assert gpu.provider == "CUDAExecutionProvider"
    x = rng.random((2, 1, 64, 96), dtype=np.float32)
    np.testing.assert_allclose(gpu.predict(x), OrtPredictor(onnx_2d, device="cpu").predict(x), atol=1e-3)


def test_session_options_threads_default_to_usable_physical_cores(monkeypatch):
    import onnxruntime as ort

    from pointseg_cli.infer import predictors

    monkeypatch.setattr(predictors, "physical_cores", lambda: 3)
    opts = predictors.session_options(ort)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.enable_cpu_mem_arena and opts.enable_mem_pattern
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert predictors.session_options(ort, threads=5).intra_op_num_threads == 5


def test_physical_cores_never_exceeds_the_cores_this_process_may_use(monkeypatch):
    import os

    from pointseg_cli.infer import predictors

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert predictors.physical_cores() == 1
