"""Architecture constants: the one place that names the networks and what they accept.

Torch-free, so that configs, metadata and the command line can check an architecture without
importing PyTorch.
"""

from __future__ import annotations

#: Network architectures: a 2-D FPN on a ResNet encoder and a 3-D U-Net.
ARCHS = ("fpn", "unet3d")
#: Spatial dimensionality each architecture works on.
ARCH_NDIM = {"fpn": 2, "unet3d": 3}
#: Spatial sizes fed to each architecture must be multiples of this (FPN: five 2× downsamplings,
#: U-Net: three 2× poolings).
ARCH_DIVISOR = {"fpn": 32, "unet3d": 8}
#: ResNet encoders of the FPN.
ENCODERS = ("resnet18", "resnet34", "resnet50")
#: Names of the network outputs (and ONNX graph outputs): class logits, and the object-centre map
#: of networks with the centre head.
LOGITS = "logits"
CENTERS = "centers"
