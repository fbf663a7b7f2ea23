"""pointseg: point-supervised segmentation of microscopy images and volumes."""

__version__ = "0.1.0"
