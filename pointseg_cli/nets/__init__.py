"""Segmentation networks: FPN-ResNet (2D) and 3D U-Net.

The architecture constants (:mod:`pointseg_cli.nets.arch`) import without PyTorch; the network
classes load PyTorch on first access. Networks are built from a configuration by
:func:`pointseg_cli.model.build_model`.
"""

from __future__ import annotations

import importlib
from typing import Any

from pointseg_cli.nets.arch import ARCH_DIVISOR, ARCH_NDIM, ARCHS, CENTERS, ENCODERS, LOGITS

_LAZY = {
    "FPN": "pointseg_cli.nets.fpn",
    "UNet3D": "pointseg_cli.nets.unet3d",
    "CenterHead": "pointseg_cli.nets.heads",
    "forward_heads": "pointseg_cli.nets.heads",
}

__all__ = [
    "ARCHS", "ARCH_DIVISOR", "ARCH_NDIM", "CENTERS", "ENCODERS", "FPN", "LOGITS", "CenterHead", "UNet3D",
    "forward_heads",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
