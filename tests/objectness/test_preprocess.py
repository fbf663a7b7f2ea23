"""Stain normalisation, Perona–Malik diffusion and equalisation."""

from __future__ import annotations

import numpy as np
import pytest

from pointseg_cli.errors import ConfigError, ImageFormatError
from pointseg_cli.objectness.preprocess import (
    _tissue,
    _to_od,
    anisotropic_diffusion,
    equalize,
    macenko_stains,
    stain_normalize,
    vahadane_stains,
)

H_E = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])
H_E = H_E / np.linalg.norm(H_E, axis=0)


def _synthetic_he(rng: np.random.Generator, stains: np.ndarray, shape=(48, 48), scale=1.0) -> np.ndarray:
    """RGB image from sparse-ish H and E concentrations through the Beer–Lambert model."""
    h = rng.gamma(0.6, 0.5, size=shape) * (rng.random(shape) < 0.6)
    e = rng.gamma(1.2, 0.4, size=shape) * (rng.random(shape) < 0.8)
    conc = np.stack([h, e]) * scale
    od = (stains @ conc.reshape(2, -1)).T
    rgb = 256.0 * np.exp(-od) - 1.0
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(*shape, 3)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1))))


@pytest.mark.parametrize("estimator", [vahadane_stains, macenko_stains])
def test_stain_matrix_recovers_known_stains(estimator, rng: np.random.Generator) -> None:  # noqa: ANN001
    img = _synthetic_he(rng, H_E)
    w = estimator(_tissue(_to_od(img)))
    assert w.shape == (3, 2)
    assert _angle(w[:, 0], H_E[:, 0]) < 8 and _angle(w[:, 1], H_E[:, 1]) < 8


@pytest.mark.parametrize("method", ["vahadane", "macenko"])
def test_stain_normalize_moves_colours_to_target(method: str, rng: np.random.Generator) -> None:
    other = np.array([[0.55, 0.20], [0.80, 0.90], [0.20, 0.40]])
    other = other / np.linalg.norm(other, axis=0)
    src = _synthetic_he(rng, other, scale=0.7)
    tgt = _synthetic_he(rng, H_E)
    out = stain_normalize(src, tgt, method=method)
    assert out.shape == src.shape and out.dtype == np.uint8
    before = np.abs(src.reshape(-1, 3).mean(0) - tgt.reshape(-1, 3).mean(0)).sum()
    after = np.abs(out.reshape(-1, 3).mean(0) - tgt.reshape(-1, 3).mean(0)).sum()
    assert after < 0.5 * before
    same = stain_normalize(tgt, tgt, method=method)
    assert np.abs(same.astype(int) - tgt).mean() < 3


def test_stain_normalize_rejects_grayscale() -> None:
    with pytest.raises(ImageFormatError, match=r"RGB image \(..., 3\)"):
        stain_normalize(np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageFormatError, match="stained pixels"):
        stain_normalize(np.full((8, 8, 3), 255, np.uint8), np.full((8, 8, 3), 255, np.uint8))


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


def test_equalize_range_and_order(rng: np.random.Generator) -> None:
    x = rng.gamma(2.0, size=(20, 20))
    out = equalize(x)
    assert out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
    flat_in, flat_out = x.ravel(), out.ravel()
    order = np.argsort(flat_in)
    assert (np.diff(flat_out[order]) >= -1e-7).all()
    assert (equalize(np.ones((4, 4))) == 0).all()
