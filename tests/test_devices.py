"""resolve_device: auto/cpu/cuda to a concrete device for PyTorch or onnxruntime, never a silent fallback."""

from __future__ import annotations

import pytest

from pointseg_cli import devices
from pointseg_cli.errors import ConfigError, DeviceError


@pytest.mark.parametrize("backend", devices.BACKENDS)
def test_cpu_is_cpu_and_bad_names_list_the_choices(backend):
    assert devices.resolve_device("cpu", backend=backend) == "cpu"
    with pytest.raises(ConfigError, match="device must be one of auto, cpu, cuda; got 'gpu'"):
        devices.resolve_device("gpu", backend=backend)
    with pytest.raises(ConfigError, match="backend must be one of torch, onnxruntime; got 'tf'"):
        devices.resolve_device("cpu", backend="tf")


def test_onnxruntime_without_a_driver(monkeypatch):
    monkeypatch.setattr(devices, "nvidia_driver_absent", lambda: True)
    assert devices.resolve_device("auto", backend="onnxruntime") == "cpu"
    with pytest.raises(DeviceError, match="device 'cuda' was requested but this machine has no NVIDIA driver"):
        devices.resolve_device("cuda", backend="onnxruntime")


@pytest.mark.parametrize("providers, expected", [
    (["CPUExecutionProvider"], "cpu"),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], "cuda"),
])
def test_onnxruntime_auto_follows_the_installed_providers(monkeypatch, providers, expected):
    import onnxruntime

    monkeypatch.setattr(devices, "nvidia_driver_absent", lambda: False)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: providers)
    assert devices.resolve_device("auto", backend="onnxruntime") == expected
    assert devices.resolve_device("cuda", backend="onnxruntime") == "cuda"  # the session checks it later


def test_torch_follows_cuda_availability(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert devices.resolve_device("auto") == "cpu"
    with pytest.raises(DeviceError, match="torch sees no CUDA GPU"):
        devices.resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert devices.resolve_device("auto") == "cuda"
