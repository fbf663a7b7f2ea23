"""Build an (untrained) network from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pointseg_cli.model.spec import NetConfig

if TYPE_CHECKING:
    from torch import nn


def build_model(config: NetConfig | Mapping[str, Any] | Any) -> nn.Module:
    """Build the network a configuration describes.

    Parameters
    ----------
    config : NetConfig, dict or object
        A :class:`NetConfig`, or anything :meth:`NetConfig.from_mapping` accepts (a training
        config or its dict): uses ``arch``, ``encoder``, ``base_filters``, ``filter_growth``,
        ``channels``, ``classes`` and ``center_head`` (from a training config: whether its
        losses include ``center``).

    Returns
    -------
    torch.nn.Module
        ``FPN`` for ``arch="fpn"``, ``UNet3D`` for ``arch="unet3d"``, mapping ``(N, C, *spatial)``
        to logits ``(N, K + 1, *spatial)``.
    """
    net = config if isinstance(config, NetConfig) else NetConfig.from_mapping(config)
    if net.arch == "fpn":
        from pointseg_cli.nets.fpn import FPN

        return FPN(
            net.channels, net.n_outputs, encoder=net.encoder, base_filters=net.base_filters, center_head=net.center_head
        )
    from pointseg_cli.nets.unet3d import UNet3D

    return UNet3D(
        net.channels, net.n_outputs, base_filters=net.base_filters, filter_growth=net.filter_growth,
        center_head=net.center_head,
    )
