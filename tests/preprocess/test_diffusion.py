"""Perona–Malik diffusion against a numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError
from pointseg_cli.preprocess.diffusion import anisotropic_diffusion


def _pm_numpy(x: np.ndarray, kappa: float, step: float) -> np.ndarray:
    """One explicit Perona–Malik step, zero-flux borders, any dimension (test oracle)."""
    acc = np.zeros_like(x, dtype=np.float64)
    for axis in range(x.ndim):
        d = np.diff(x.astype(np.float64), axis=axis)
        flux = np.exp(-((d / kappa) ** 2)) * d
        lead = [slice(None)] * x.ndim
        lag = [slice(None)] * x.ndim
        lead[axis] = slice(0, -1)
        lag[axis] = slice(1, None)
        acc[tuple(lead)] += flux
        acc[tuple(lag)] -= flux
    return x + step * acc


@pytest.mark.parametrize("shape", [(9, 11), (4, 6, 5)])
def test_diffusion_matches_numpy_oracle(shape: tuple[int, ...], rng: np.random.Generator) -> None:
    x = rng.random(shape).astype(np.float32)
    got = anisotropic_diffusion(x, iterations=2, kappa=0.2, step=0.1)
    want = _pm_numpy(_pm_numpy(x, 0.2, 0.1).astype(np.float32), 0.2, 0.1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_diffusion_smooths_noise_but_keeps_edges(rng: np.random.Generator) -> None:
    x = np.zeros((32, 32), np.float32)
    x[:, 16:] = 1.0
    noisy = x + rng.normal(0, 0.03, x.shape).astype(np.float32)
    out = anisotropic_diffusion(noisy, iterations=20, kappa=0.1)
    assert out[:, 2:14].std() < 0.5 * noisy[:, 2:14].std()
    assert out[:, 17:].mean() - out[:, :15].mean() > 0.9
    rgb = anisotropic_diffusion(np.stack([noisy, noisy], axis=0), iterations=20, kappa=0.1, channel_axis=0)
    np.testing.assert_allclose(rgb[1], out, atol=1e-6)


def test_diffusion_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="step must be in"):
        anisotropic_diffusion(np.zeros((4, 4)), iterations=1, step=0.3)
    with pytest.raises(ConfigError, match="iterations must be >= 0"):
        anisotropic_diffusion(np.zeros((4, 4)), iterations=-1)
