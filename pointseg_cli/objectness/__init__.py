"""Objectness: seeded region growing from point annotations (soft labels for training).

``compute_objectness`` is the algorithm on given intensities; ``objectness_for_image`` is the
full pipeline (preprocessing, per-image normalisation, growing) configured by ``ObjectnessConfig``.
"""

from pointseg_cli.objectness.grow import MODES, ObjectnessResult, compute_objectness
from pointseg_cli.objectness.pipeline import DEFAULT_W, ObjectnessConfig, objectness_for_image, prepare_image

__all__ = [
    "DEFAULT_W",
    "MODES",
    "ObjectnessConfig",
    "ObjectnessResult",
    "compute_objectness",
    "objectness_for_image",
    "prepare_image",
]
