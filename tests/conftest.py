"""Shared fixtures. Tests build their own small data; none reads ../shared at run time."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
