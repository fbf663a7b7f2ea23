"""Segmentation networks: FPN-ResNet (2D) and 3D U-Net, and the factory that builds them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pointseg_cli.errors import check_choice
from pointseg_cli.nets.fpn import FPN, FPN_DIVISOR
from pointseg_cli.nets.unet3d import UNET_DIVISOR, UNet3D

if TYPE_CHECKING:
    from torch import nn

    from pointseg_cli.train.config import TrainConfig

ARCHS = ("fpn", "unet3d")
ARCH_NDIM = {"fpn": 2, "unet3d": 3}
ARCH_DIVISOR = {"fpn": FPN_DIVISOR, "unet3d": UNET_DIVISOR}

__all__ = ["ARCHS", "ARCH_DIVISOR", "ARCH_NDIM", "FPN", "UNet3D", "build_model"]


def build_model(config: TrainConfig | dict[str, Any]) -> nn.Module:
    """Build the (untrained) network a :class:`~pointseg_cli.train.config.TrainConfig` describes.

    Parameters
    ----------
    config : TrainConfig or dict
        Uses ``arch``, ``encoder``, ``base_filters``, ``filter_growth``, ``channels`` and
        ``classes`` (object classes; the network outputs ``len(classes) + 1`` channels).

    Returns
    -------
    torch.nn.Module
        ``FPN`` for ``arch="fpn"``, ``UNet3D`` for ``arch="unet3d"``.
    """
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    arch = check_choice("arch", str(get("arch")), ARCHS)
    n_classes = len(get("classes")) + 1
    channels = int(get("channels"))
    base = int(get("base_filters", 64))
    if arch == "fpn":
        return FPN(channels, n_classes, encoder=str(get("encoder", "resnet50")), base_filters=base)
    return UNet3D(channels, n_classes, base_filters=base, filter_growth=int(get("filter_growth", 1)))
