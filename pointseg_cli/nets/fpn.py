"""2D Feature Pyramid Network on a ResNet encoder, decoder merging by concatenation.

Written from the ResNet (He et al. 2016) and FPN (Lin et al. 2017; Kirillov et al. 2019 for the
semantic branch) papers; no torchvision. The network maps ``(N, C, Y, X)`` to logits
``(N, K + 1, Y, X)`` at the input resolution; with ``center_head=True`` it also has an object-centre
map (see :meth:`FPN.forward_heads`). ``Y`` and ``X`` must be multiples of
:data:`FPN_DIVISOR` (the encoder downsamples five times).

Only ONNX-friendly ops are used: Conv, BatchNorm, ReLU, MaxPool, nearest upsampling by 2 in the
top-down path and bilinear upsampling (``align_corners=False``) in the semantic branch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pointseg_cli.errors import ConfigError, check_choice
from pointseg_cli.nets.arch import ARCH_DIVISOR, ENCODERS
from pointseg_cli.nets.heads import CENTERS, LOGITS, CenterHead, SegmentationNet

#: Spatial sizes fed to the FPN must be multiples of this.
FPN_DIVISOR = ARCH_DIVISOR["fpn"]

#: Encoder name (:data:`~pointseg_cli.nets.arch.ENCODERS`) -> (block kind, blocks per stage).
ENCODER_BLOCKS: dict[str, tuple[str, tuple[int, int, int, int]]] = dict(
    zip(ENCODERS, (("basic", (2, 2, 2, 2)), ("basic", (3, 4, 6, 3)), ("bottleneck", (3, 4, 6, 3))), strict=True)
)


def _conv_bn_relu(cin: int, cout: int, *, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    """Identity when shapes match, else a strided 1×1 projection with BatchNorm (ResNet's option B)."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projected) shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(self, cin: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (strided), 1×1 expand ×4, with a shortcut (ResNet-50)."""

    expansion = 4

    def __init__(self, cin: int, width: int, *, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """ResNet trunk returning the feature maps at strides 4, 8, 16 and 32.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    name : str
        ``resnet18``, ``resnet34`` or ``resnet50``.
    width : int
        Stem width (64 in the standard ResNet); stage widths are width × 1, 2, 4, 8.
    """

    def __init__(self, in_channels: int, *, name: str = "resnet50", width: int = 64) -> None:
        super().__init__()
        check_choice("encoder", name, ENCODERS)
        kind, counts = ENCODER_BLOCKS[name]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages = []
        cin = width
        self.out_channels: list[int] = []
        for i, n in enumerate(counts):
            w = width * 2**i
            layers = []
            for j in range(n):
                layers.append(block(cin, w, stride=2 if (j == 0 and i > 0) else 1))
                cin = w * block.expansion
            stages.append(nn.Sequential(*layers))
            self.out_channels.append(cin)
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class _SemanticBranch(nn.Module):
    """Conv–BN–ReLU then ×2 bilinear upsampling, repeated until stride 4."""

    def __init__(self, cin: int, cout: int, *, n_upsamples: int) -> None:
        super().__init__()
        self.n_upsamples = n_upsamples
        blocks = [_conv_bn_relu(cin, cout)]
        for _ in range(max(n_upsamples - 1, 0)):
            blocks.append(_conv_bn_relu(cout, cout))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i < self.n_upsamples:
                x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return x


class FPN(SegmentationNet):
    """ResNet + FPN semantic segmentation network, pyramid levels merged by concatenation.

    Parameters
    ----------
    in_channels : int
        Image channels ``C``.
    n_classes : int
        Output channels ``K + 1`` (background included).
    encoder : str
        ResNet depth: ``resnet18``, ``resnet34`` or ``resnet50`` (the paper's choice).
    base_filters : int
        Encoder stem width (64 = standard ResNet). The pyramid has ``4 * base_filters`` channels,
        each semantic branch ``2 * base_filters``.
    center_head : bool
        Add the object-centre head on the fused semantic features (default off: networks
        trained before the head existed load unchanged).

    Notes
    -----
    Input ``(N, C, Y, X)`` with ``Y, X`` multiples of 32; :meth:`forward` gives logits
    ``(N, K + 1, Y, X)``, :meth:`forward_heads` also the centre map ``(N, 1, Y, X)``.
    """

    divisor = FPN_DIVISOR

    def __init__(
        self,
        in_channels: int,
        n_classes: int,
        *,
        encoder: str = "resnet50",
        base_filters: int = 64,
        center_head: bool = False,
    ):
        super().__init__()
        if in_channels < 1 or n_classes < 2 or base_filters < 1:
            raise ConfigError(
                f"FPN needs in_channels >= 1, n_classes >= 2 and base_filters >= 1; "
                f"got {in_channels}, {n_classes}, {base_filters}"
            )
        self.encoder = ResNetEncoder(in_channels, name=encoder, width=base_filters)
        pyr = 4 * base_filters
        seg = 2 * base_filters
        self.lateral = nn.ModuleList(nn.Conv2d(c, pyr, 1) for c in self.encoder.out_channels)
        # Level i (stride 4 * 2**i) is upsampled i times to reach stride 4.
        self.branches = nn.ModuleList(_SemanticBranch(pyr, seg, n_upsamples=i) for i in range(4))
        self.fuse = _conv_bn_relu(4 * seg, seg)
        self.head = nn.Conv2d(seg, n_classes, 1)
        self.center = CenterHead(seg, ndim=2) if center_head else None

    def forward_heads(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output: ``logits`` ``(N, K + 1, Y, X)`` and, with the head, ``centers`` ``(N, 1, Y, X)`` in [0, 1]."""
        c2, c3, c4, c5 = self.encoder(x)
        p5 = self.lateral[3](c5)
        p4 = self.lateral[2](c4) + F.interpolate(p5, scale_factor=2.0, mode="nearest")
        p3 = self.lateral[1](c3) + F.interpolate(p4, scale_factor=2.0, mode="nearest")
        p2 = self.lateral[0](c2) + F.interpolate(p3, scale_factor=2.0, mode="nearest")
        merged = torch.cat([branch(p) for branch, p in zip(self.branches, (p2, p3, p4, p5), strict=True)], dim=1)
        feats = self.fuse(merged)
        y = F.interpolate(self.head(feats), scale_factor=4.0, mode="bilinear", align_corners=False)
        if self.center is None:
            return {LOGITS: y}
        c = F.interpolate(self.center(feats), scale_factor=4.0, mode="bilinear", align_corners=False)
        return {LOGITS: y, CENTERS: torch.sigmoid(c)}
