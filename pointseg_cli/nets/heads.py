"""Output heads shared by the networks: the object-centre map.

The centre head is a small 3×3 conv–BN–ReLU followed by a 1×1 conv to one channel, on the last
decoder features (the same features the class logits are computed from). Its output goes through
a sigmoid, so the ``centers`` map lies in ``[0, 1]``: about 1 at an object's centre, falling to
0 towards its boundary and in the background (see :mod:`pointseg_cli.train.targets`). A map in
``[0, 1]`` blends across overlapping tiles like probabilities do.
"""

from __future__ import annotations

import torch
from torch import nn

from pointseg_cli.nets.arch import CENTERS, LOGITS

__all__ = ["CENTERS", "LOGITS", "CenterHead", "SegmentationNet", "forward_heads"]


class CenterHead(nn.Module):
    """Conv–BN–ReLU (3×3) then a 1×1 conv to one channel, for 2-D or 3-D features.

    Parameters
    ----------
    channels : int
        Channels of the decoder features the head reads.
    ndim : int
        2 (``Conv2d``) or 3 (``Conv3d``).
    """

    def __init__(self, channels: int, *, ndim: int) -> None:
        super().__init__()
        conv = nn.Conv2d if ndim == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d
        self.body = nn.Sequential(
            conv(channels, channels, 3, padding=1, bias=False), norm(channels), nn.ReLU(inplace=True)
        )
        self.out = conv(channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Centre *logits* ``(N, 1, *spatial)`` (the network applies the sigmoid after resizing)."""
        return self.out(self.body(x))


class SegmentationNet(nn.Module):
    """Base of the segmentation networks: class logits plus the optional centre head.

    Subclasses set ``self.center`` (a :class:`CenterHead` or ``None``) and implement
    :meth:`forward_heads`; :meth:`forward` returns its class logits.
    """

    center: CenterHead | None

    @property
    def output_names(self) -> tuple[str, ...]:
        """``("logits",)``, or ``("logits", "centers")`` with the centre head."""
        return (LOGITS,) if self.center is None else (LOGITS, CENTERS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, K + 1, *spatial)``."""
        return self.forward_heads(x)[LOGITS]

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output by name: ``logits`` and, with the head, ``centers`` in [0, 1]."""
        raise NotImplementedError


def forward_heads(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """All outputs of ``model`` by name (``logits``, and ``centers`` when it has the head)."""
    heads = getattr(model, "forward_heads", None)
    return heads(x) if heads is not None else {LOGITS: model(x)}
