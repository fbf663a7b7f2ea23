"""Objectness: seeded region growing from point annotations (soft labels for training)."""

from pointseg_cli.objectness.grow import MODES, ObjectnessResult, compute_objectness

__all__ = ["MODES", "ObjectnessResult", "compute_objectness"]
