"""The model layer: build networks, load checkpoints and ONNX metadata, describe models.

What both training and inference use, so that inference never imports the training or export
packages. Importing this package does not import PyTorch or onnx; the functions that need them
import them when called.

- :mod:`~pointseg_cli.model.spec`: :class:`NetConfig`, input kinds, precisions;
- :mod:`~pointseg_cli.model.build`: :func:`build_model`;
- :mod:`~pointseg_cli.model.checkpoint`: :func:`load_model` and the checkpoint format;
- :mod:`~pointseg_cli.model.metadata`: :class:`ModelMetadata`, read from ONNX files.
"""

from __future__ import annotations

from pointseg_cli.model.build import build_model
from pointseg_cli.model.checkpoint import (
    CHECKPOINT_FORMAT,
    LoadedModel,
    load_model,
    read_checkpoint,
    resolve_checkpoint,
)
from pointseg_cli.model.metadata import ModelMetadata, metadata_from_loaded, read_model_metadata
from pointseg_cli.model.spec import KINDS, PRECISION_CHOICES, PRECISIONS, NetConfig, input_kind

__all__ = [
    "CHECKPOINT_FORMAT",
    "KINDS",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "LoadedModel",
    "ModelMetadata",
    "NetConfig",
    "build_model",
    "input_kind",
    "load_model",
    "metadata_from_loaded",
    "read_checkpoint",
    "read_model_metadata",
    "resolve_checkpoint",
]
