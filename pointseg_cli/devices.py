"""Explicit device selection for PyTorch code (onnxruntime providers live in infer/predictors)."""

from __future__ import annotations

from pointseg_cli.errors import DeviceError, check_choice

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """Turn ``auto|cpu|cuda`` into a concrete torch device string.

    ``auto`` picks ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``. ``cuda`` without a
    usable GPU raises :class:`DeviceError` instead of silently falling back.
    """
    import torch

    check_choice("device", name, DEVICE_CHOICES)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device 'cuda' was requested but torch sees no CUDA GPU; use --device cpu or auto")
    return name
