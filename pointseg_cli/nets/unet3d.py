"""3D U-Net (Çiçek et al. 2016 style): 4 levels, two Conv3d–BN–ReLU per level, transposed convs.

Input ``(N, C, Z, Y, X)`` with ``Z, Y, X`` multiples of :data:`UNET_DIVISOR`; output logits
``(N, K + 1, Z, Y, X)``. Upsampling is ``ConvTranspose3d(kernel=2, stride=2)`` only — no
trilinear resize, which onnxruntime handles poorly. With ``center_head=True`` the network also
has an object-centre map (see :meth:`UNet3D.forward_heads`).
"""

from __future__ import annotations

import torch
from torch import nn

from pointseg_cli.errors import ConfigError
from pointseg_cli.nets.arch import ARCH_DIVISOR
from pointseg_cli.nets.heads import CENTERS, LOGITS, CenterHead, SegmentationNet

#: Spatial sizes fed to the U-Net must be multiples of this (three 2× poolings).
UNET_DIVISOR = ARCH_DIVISOR["unet3d"]
LEVELS = 4


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
    )


class UNet3D(SegmentationNet):
    """Four-level 3D U-Net.

    Parameters
    ----------
    in_channels : int
        Volume channels ``C``.
    n_classes : int
        Output channels ``K + 1`` (background included).
    base_filters : int
        Filters at the first level (64 as in the paper).
    filter_growth : int
        1 keeps ``base_filters`` at every level (the paper); 2 doubles per level.
    center_head : bool
        Add the object-centre head on the last decoder level (default off: networks trained
        before the head existed load unchanged).
    """

    divisor = UNET_DIVISOR

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        base_filters: int = 64,
        filter_growth: int = 1,
        center_head: bool = False,
    ):
        super().__init__()
        if in_channels < 1 or n_classes < 2 or base_filters < 1 or filter_growth not in (1, 2):
            raise ConfigError(
                "UNet3D needs in_channels >= 1, n_classes >= 2, base_filters >= 1 and filter_growth 1 or 2; "
                f"got {in_channels}, {n_classes}, {base_filters}, {filter_growth}"
            )
        widths = [base_filters * filter_growth**i for i in range(LEVELS)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(_double_conv(cin, w))
            cin = w
        self.pool = nn.MaxPool3d(2)
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in range(LEVELS - 1, 0, -1):
            self.up.append(nn.ConvTranspose3d(widths[i], widths[i - 1], 2, stride=2))
            self.dec.append(_double_conv(2 * widths[i - 1], widths[i - 1]))
        self.head = nn.Conv3d(widths[0], n_classes, 1)
        self.center = CenterHead(widths[0], ndim=3) if center_head else None

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output: ``logits`` and, with the head, ``centers`` ``(N, 1, Z, Y, X)`` in [0, 1]."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < LEVELS - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec in zip(self.up, self.dec, strict=True):
            x = up(x)
            x = dec(torch.cat([skips.pop(), x], dim=1))
        if self.center is None:
            return {LOGITS: self.head(x)}
        return {LOGITS: self.head(x), CENTERS: torch.sigmoid(self.center(x))}
