"""Data package: model registry, model cards and embedded default models (installed as pointseg_cli._models)."""
