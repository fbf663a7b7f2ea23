"""Write checkpoints (``best.pt`` / ``last.pt``): weights plus the training config, atomically.

The format (:data:`~pointseg_cli.model.checkpoint.CHECKPOINT_FORMAT`) and the readers
(``read_checkpoint``, ``load_model``) live in :mod:`pointseg_cli.model.checkpoint`, which
inference uses without importing training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointseg_cli.model.checkpoint import CHECKPOINT_FORMAT

if TYPE_CHECKING:
    from torch import nn

    from pointseg_cli.train.config import TrainConfig


def save_checkpoint(path: str | Path, *, model: nn.Module, config: TrainConfig, **state: Any) -> Path:
    """Write a checkpoint atomically; ``state`` holds optional resume entries (optimizer, step, ...)."""
    import torch

    from pointseg_cli.io.images import atomic_output

    path = Path(path)
    payload = {"format": CHECKPOINT_FORMAT, "config": config.to_dict(), "model": model.state_dict(), **state}
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)
    return path
