"""Tiny networks and predictors for the inference tests (fast on 2 CPU cores)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pointseg_cli.infer.predictors import TorchPredictor
from pointseg_cli.model.metadata import ModelMetadata

NONE_NORM = {"method": "none"}


def tiny_net(ndim: int, channels: int = 1, n_out: int = 3, *, seed: int = 0) -> nn.Module:
    """Two 3-wide convolutions: receptive field 5 voxels (radius 2), far smaller than any overlap used."""
    torch.manual_seed(seed)
    conv = nn.Conv3d if ndim == 3 else nn.Conv2d
    return nn.Sequential(conv(channels, 4, 3, padding=1), nn.Tanh(), conv(4, n_out, 3, padding=1)).eval()


def make_meta(ndim: int, *, channels: int = 1, tile=None, norm=None, classes=("a", "b")) -> ModelMetadata:
    tile = tile or ((16, 32, 32) if ndim == 3 else (64, 64))
    return ModelMetadata(classes=tuple(classes), ndim=ndim, channels=channels, normalization=norm or NONE_NORM,
                         tile=tuple(tile), divisor=8)


def untiled(net: nn.Module, image: np.ndarray, channels: int = 1) -> np.ndarray:
    """The whole-image output ``(K+1, *spatial)`` for an (already normalised) canonical image."""
    x = image[None, None] if channels == 1 else np.moveaxis(image, -1, 0)[None]
    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))[0].numpy()


def untiled_padded(net: nn.Module, image: np.ndarray, channels: int = 1, divisor: int = 8) -> np.ndarray:
    """:func:`untiled` of the image padded at its end to a multiple of ``divisor`` (as ``segment``
    pads it, by reflection), cropped back: one pass of a network with that size divisor."""
    from pointseg_cli.infer.tiling import pad_to, round_up

    spatial = image.shape[: image.ndim - (channels > 1)]
    full = untiled(net, pad_to(image, [round_up(s, divisor) for s in spatial]), channels)
    return full[(slice(None), *(slice(0, s) for s in spatial))]


class FailingPredictor:
    """Wraps a predictor and raises on the ``fail_on``-th call (1-based)."""

    def __init__(self, inner, fail_on: int) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    @property
    def metadata(self):
        return self.inner.metadata

    @property
    def provider(self) -> str:
        return "failing"

    def predict(self, batch):
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("simulated crash in the middle of the run")
        return self.inner.predict(batch)


@pytest.fixture
def pred2d() -> TorchPredictor:
    return TorchPredictor(tiny_net(2), make_meta(2))


@pytest.fixture
def pred3d() -> TorchPredictor:
    return TorchPredictor(tiny_net(3), make_meta(3))
