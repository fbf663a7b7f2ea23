"""`ExportConfig`: settings of an export, validated before anything is loaded."""

from __future__ import annotations

import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.export.onnx import DEFAULT_TOLERANCE, ExportConfig, run_export


def test_defaults_and_tolerance_by_precision() -> None:
    assert ExportConfig().parity_tolerance == DEFAULT_TOLERANCE["fp32"]
    assert ExportConfig(precision="fp16").parity_tolerance == DEFAULT_TOLERANCE["fp16"]
    assert ExportConfig(tolerance=0.5).parity_tolerance == 0.5


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"precision": "int8"}, "precision must be one of"), ({"opset": 30}, "opset must be between 7 and"),
     ({"tolerance": 0.0}, "tolerance must be > 0")],
)
def test_invalid_settings_raise(kw, message) -> None:
    with pytest.raises(ConfigError, match=message):
        ExportConfig(**kw)


def test_run_export_of_a_missing_run_raises(tmp_path) -> None:
    from pointseg_cli.errors import ModelError

    with pytest.raises(ModelError, match="not found"):
        run_export(tmp_path / "none", tmp_path / "m.onnx")
