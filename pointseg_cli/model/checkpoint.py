"""Read checkpoints (``best.pt`` / ``last.pt``) and rebuild their networks, without the training package.

A checkpoint is a ``torch.save`` dict with keys ``format`` (:data:`CHECKPOINT_FORMAT`),
``config`` (the run's training config as a dict), ``model`` (state dict) and, for resuming,
``optimizer``, ``scheduler``, ``epoch``, ``step``, ``best_score`` and ``history``. Training writes
it (``pointseg_cli.train.checkpoint.save_checkpoint``); :func:`load_model` is what ``export``
and ``segment`` use. Only the network fields of the config (:class:`~pointseg_cli.model.spec.NetConfig`)
plus ``crop`` and ``normalization`` are needed here.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pointseg_cli.errors import ConfigError, ModelError
from pointseg_cli.model.build import build_model
from pointseg_cli.model.spec import NetConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "pointseg.checkpoint/1"
#: Checkpoint files looked for in a run directory, in order.
CHECKPOINT_NAMES = ("best.pt", "last.pt")


@dataclass(frozen=True)
class LoadedModel:
    """A trained network and what is needed to feed it.

    Attributes
    ----------
    model : torch.nn.Module
        In eval mode, on the requested device; ``(N, C, *spatial) -> (N, K + 1, *spatial)`` logits.
    config : dict
        The run's training config as saved in the checkpoint.
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


def resolve_checkpoint(path: str | Path) -> Path:
    """A ``.pt`` file as is; a run dir gives its ``best.pt``, else ``last.pt``."""
    path = Path(path)
    if path.is_dir():
        for name in CHECKPOINT_NAMES:
            if (path / name).is_file():
                return path / name
        raise ModelError(f"run directory {path} has no best.pt or last.pt; found {sorted(os.listdir(path))[:8]}")
    if not path.is_file():
        raise ModelError(f"model {path} not found: expected a run directory or a .pt checkpoint")
    return path


def read_checkpoint(path: str | Path, *, device: str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint dict (tensors mapped to ``device``)."""
    import torch

    path = resolve_checkpoint(path)
    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except MemoryError:
        raise ModelError(f"cannot read checkpoint {path}: not enough memory") from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types (KeyError, UnpicklingError, ...)
        log.debug("torch.load(%s) failed", path, exc_info=True)
        reason = _load_failure(path, exc)
        expected = "expected a .pt file written by 'pointseg train'"
        raise ModelError(f"cannot read checkpoint {path}: {reason}; {expected}") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ModelError(f"{path} is not a pointseg checkpoint: expected format {CHECKPOINT_FORMAT}, got {found!r}")
    return data


def _load_failure(path: Path, exc: BaseException) -> str:
    """A short reason for a failed ``torch.load`` (torch's own messages run over many lines of advice)."""
    text = str(exc)
    try:
        if path.stat().st_size == 0:
            return "the file is empty"
    except OSError as err:
        return err.strerror or "the file cannot be read"
    if isinstance(exc, OSError):
        return exc.strerror or "the file cannot be read"
    if "Weights only load failed" in text:
        if "Unsupported global" in text or "GLOBAL" in text:
            return "it holds Python objects other than tensors and plain data (not loaded, for safety)"
        return "it is not a PyTorch file (unreadable pickle data)"
    if "zip archive" in text or "central directory" in text:
        return "it is truncated or corrupt (its zip archive cannot be read)"
    if "hasRecord" in text or isinstance(exc, (KeyError, EOFError, pickle.UnpicklingError)):
        return "it is not a PyTorch file, or it is truncated or corrupt"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:160]


def _net_and_tile(config: Any, path: Path) -> tuple[NetConfig, tuple[int, ...]]:
    """The network settings and training crop of a checkpoint's config, checked."""
    if not isinstance(config, dict):
        raise ModelError(f"checkpoint {path} has no training config: expected a dict, got {type(config).__name__}")
    try:
        net = NetConfig.from_mapping(config)
    except (ConfigError, TypeError) as exc:
        raise ModelError(f"checkpoint {path} has an invalid network config: {exc}") from None
    ndim = config.get("ndim", net.ndim)
    if ndim != net.ndim:
        raise ModelError(f"checkpoint {path}: arch {net.arch!r} is {net.ndim}-D but its config says ndim {ndim!r}")
    crop = config.get("crop")
    if (
        not isinstance(crop, (list, tuple))
        or len(crop) != net.ndim
        or not all(isinstance(c, int) and c > 0 and c % net.divisor == 0 for c in crop)
    ):
        raise ModelError(
            f"checkpoint {path}: crop must be {net.ndim} positive multiples of {net.divisor}; got {crop!r}"
        )
    return net, tuple(crop)


def load_model(path: str | Path, *, device: str = "cpu") -> LoadedModel:
    """Rebuild the network of a run dir or ``.pt`` checkpoint, with weights, in eval mode.

    Parameters
    ----------
    path : str or Path
        Run directory (uses ``best.pt``, else ``last.pt``) or a checkpoint file.
    device : str
        Torch device to place the model on (``"cpu"``, ``"cuda"``).

    Returns
    -------
    LoadedModel
    """
    ckpt_path = resolve_checkpoint(path)
    data = read_checkpoint(ckpt_path, device=device)
    config = data.get("config")
    net, tile = _net_and_tile(config, ckpt_path)
    normalization = config.get("normalization") or {}
    if not isinstance(normalization, dict):
        raise ModelError(f"checkpoint {ckpt_path}: normalization must be a dict; got {normalization!r}")
    model = build_model(net)
    try:
        model.load_state_dict(data["model"])
    except (RuntimeError, KeyError) as exc:
        raise ModelError(f"weights in {ckpt_path} do not fit the {net.arch} described by its config: {exc}") from None
    model.to(device).eval()
    log.debug("loaded %s (%s, classes %s)", ckpt_path, net.arch, net.classes)
    return LoadedModel(
        model=model,
        config=dict(config),
        classes=list(net.classes),
        ndim=net.ndim,
        channels=net.channels,
        normalization=dict(normalization),
        tile=tile,
        divisor=net.divisor,
        path=ckpt_path,
    )
