"""Checkpoints (``best.pt`` / ``last.pt``): weights plus the training config, written atomically.

A checkpoint is a ``torch.save`` dict with keys ``format`` (:data:`CHECKPOINT_FORMAT`),
``config`` (``TrainConfig.to_dict()``), ``model`` (state dict) and, for resuming, ``optimizer``,
``scheduler``, ``epoch``, ``step``, ``best_score`` and ``history``. :func:`load_model` is what
``export`` and ``segment`` use.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pointseg_cli.errors import ModelError
from pointseg_cli.train.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "pointseg.checkpoint/1"


@dataclass(frozen=True)
class LoadedModel:
    """A trained network and what is needed to feed it.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on the requested device; ``(N, C, *spatial) -> (N, K + 1, *spatial)`` logits.
    config : dict
        ``TrainConfig.to_dict()`` of the run.
    classes : list of str
        Object classes (id = index + 1; background is 0).
    ndim, channels : int
        Spatial dimensionality and image channels ``C``.
    normalization : dict
        ``Normalization.to_dict()`` used at training (plus an optional ``stain`` entry).
    tile : tuple of int
        Spatial training crop.
    divisor : int
        Spatial sizes must be multiples of this (32 FPN, 8 U-Net).
    path : Path
        The checkpoint file that was read.
    """

    model: nn.Module
    config: dict[str, Any]
    classes: list[str]
    ndim: int
    channels: int
    normalization: dict[str, Any]
    tile: tuple[int, ...]
    divisor: int
    path: Path


def save_checkpoint(path: str | Path, *, model: nn.Module, config: TrainConfig, **state: Any) -> Path:
    """Write a checkpoint atomically; ``state`` holds optional resume entries (optimizer, step, ...)."""
    from pointseg_cli.io.images import atomic_output

    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "model": model.state_dict(), **state}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file as is; a run dir gives its ``best.pt``, else ``last.pt``."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise ModelError(f"run directory {path} has no best.pt or last.pt; found {sorted(os.listdir(path))[:8]}")
    if not path.is_file():
        raise ModelError(f"model {path} not found: expected a run directory or a .pt checkpoint")
    return path


def read_checkpoint(path: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint dict (tensors mapped to ``device``)."""
    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ModelError(f"cannot read checkpoint {path}: expected a pointseg .pt file, got {exc}") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"{path} is not a pointseg checkpoint: expected format {CHECKPOINT_FORMAT}, got {found!r}")
    return data


def load_model(path: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Rebuild the network of a run dir or ``.pt`` checkpoint, with weights, in eval mode.

    Parameters
    ----------
    path : str or Path
        Run directory (uses ``best.pt``, else ``last.pt``) or a checkpoint file.
    device : str
        Torch device to place the model on.
    """
    from pointseg_cli.nets import build_model

    ckpt_path = resolve_checkpoint(path)
    data = read_checkpoint(ckpt_path, device=device)
    config = TrainConfig.from_dict(data["config"])
    model = build_model(config)
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(
            f"weights in {ckpt_path} do not fit the {config.arch} described by its config: {exc}"
        ) from None
    model.to(device).eval()
    log.debug("loaded %s (%s, classes %s)", ckpt_path, config.arch, config.classes)
    return LoadedModel(
        model=model,
        config=config.to_dict(),
        classes=list(config.classes),
        ndim=config.ndim,
        channels=config.channels,
        normalization=dict(config.normalization),
        tile=tuple(config.crop or ()),
        divisor=config.divisor,
        path=ckpt_path,
    )
