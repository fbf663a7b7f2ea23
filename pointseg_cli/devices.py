"""Explicit device selection: the one place that knows the device choices and resolves ``auto``.

The command line resolves ``--device`` once with :func:`resolve_device`; library functions take
the resolved device (``"cpu"`` or ``"cuda"``) and never pick one themselves.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pointseg_cli.errors import DeviceError, check_choice

#: ``--device`` values.
DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: What :func:`resolve_device` returns.
RESOLVED_DEVICES = ("cpu", "cuda")
#: Runtimes a model can run on: PyTorch (checkpoints, training) or onnxruntime (ONNX models).
BACKENDS = ("torch", "onnxruntime")


def nvidia_driver_absent() -> bool:
    """True only when this is Linux and no NVIDIA driver is loaded (then CUDA cannot work)."""
    if not sys.platform.startswith("linux"):
        return False
    return not (Path("/proc/driver/nvidia").exists() or Path("/dev/nvidiactl").exists())


def resolve_device(name: str = "auto", *, backend: str = "torch") -> str:
    """Turn ``auto|cpu|cuda`` into ``cpu`` or ``cuda`` for a runtime.

    Parameters
    ----------
    name : {"auto", "cpu", "cuda"}
        The requested device.
    backend : {"torch", "onnxruntime"}
        The runtime that will use it. ``torch``: ``auto`` is ``cuda`` when
        ``torch.cuda.is_available()``. ``onnxruntime``: ``auto`` is ``cuda`` when an NVIDIA
        driver is loaded and the installed onnxruntime has the CUDA execution provider (without
        importing PyTorch); the session created later still has to get that provider.

    Raises
    ------
    DeviceError
        ``cuda`` was requested but cannot work here (no silent fallback to the CPU).
    """
    check_choice("device", name, DEVICE_CHOICES)
    check_choice("backend", backend, BACKENDS)
    if name == "cpu":
        return name
    if backend == "onnxruntime":
        if nvidia_driver_absent():
            if name == "cuda":
                raise DeviceError(
                    "device 'cuda' was requested but this machine has no NVIDIA driver (no /proc/driver/nvidia); "
                    "use --device cpu or auto"
                )
            return "cpu"
        if name == "cuda":
            return name
        import onnxruntime as ort

        return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was requested but torch sees no CUDA GPU; use --device cpu or auto")
    return name
