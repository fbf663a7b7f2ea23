"""Stain reference / fit / per-pixel apply, and their agreement with ``stain_normalize``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pointseg_cli.demo import make_he_tile
from pointseg_cli.errors import ConfigError, ImageFormatError, InputError
from pointseg_cli.io.images import write_tiff
from pointseg_cli.preprocess import stain
from pointseg_cli.preprocess.stain import (
    apply_stains,
    check_reference,
    fit_stains,
    normalize_to_reference,
    reference_from_file,
    stain_normalize,
    stain_reference,
)


@pytest.fixture(scope="module")
def tiles() -> tuple[np.ndarray, np.ndarray]:
    """Two H&E-like demo tiles with different stain vectors and strengths."""
    return (
        make_he_tile((96, 96), seed=1, difficulty="hard").image,
        make_he_tile((96, 96), seed=2, difficulty="hard").image,
    )


def shifted(image: np.ndarray) -> np.ndarray:
    """The same tissue rendered with other stain vectors (a scanner / lab shift)."""
    src = fit_stains(image)
    other = {"method": "vahadane", "matrix": [[0.60, 0.15], [0.75, 0.97], [0.30, 0.15]], "max": [0.8, 1.3]}
    return apply_stains(image, src, other)


@pytest.mark.parametrize("method", ["vahadane", "macenko"])
def test_reference_then_apply_equals_stain_normalize(tiles, method: str) -> None:
    src, tgt = tiles
    ref = stain_reference(tgt, method=method)
    assert set(ref) == {"method", "matrix", "max"} and np.shape(ref["matrix"]) == (3, 2)
    out = apply_stains(src, fit_stains(src, method=method), json.loads(json.dumps(ref)))
    np.testing.assert_array_equal(out, stain_normalize(src, tgt, method=method))
    np.testing.assert_array_equal(normalize_to_reference(src, ref), out)


def test_apply_is_per_pixel_so_tiles_match_the_whole_image(tiles) -> None:
    src, tgt = tiles
    model, ref = fit_stains(src), stain_reference(tgt)
    whole = apply_stains(src, model, ref)
    np.testing.assert_array_equal(apply_stains(src[10:43, 5:77], model, ref), whole[10:43, 5:77])
    batch = np.stack([src[:32, :32], src[40:72, 50:82]])  # (N, Y, X, 3) as the tiled engine passes it
    np.testing.assert_array_equal(apply_stains(batch, model, ref), np.stack([whole[:32, :32], whole[40:72, 50:82]]))
    floats = apply_stains(src[:8, :8].astype(np.float32) / 255, model, ref)  # floats in [0, 1] are 8-bit / 255
    np.testing.assert_array_equal(floats, whole[:8, :8])


@pytest.mark.parametrize("method", ["vahadane", "macenko"])
def test_normalising_a_stain_shifted_image_restores_its_colours(tiles, method: str) -> None:
    original = tiles[0]
    moved = shifted(original)
    before = np.abs(moved.astype(float) - original).mean()
    back = normalize_to_reference(moved, stain_reference(original, method=method))
    after = np.abs(back.astype(float) - original).mean()
    assert before > 20 and after < 0.5 * before, (before, after)


def test_big_images_are_fitted_on_a_subsample(tiles, monkeypatch) -> None:
    src = tiles[0]
    full_w, full_max = fit_stains(src)
    monkeypatch.setattr(stain, "FIT_MAX_PIXELS", 2000)
    sub_w, sub_max = fit_stains(src)
    assert not np.array_equal(sub_w, full_w)  # really another pixel set
    cos = np.sum(sub_w * full_w, axis=0)
    assert (cos > np.cos(np.radians(5))).all() and np.allclose(sub_max, full_max, rtol=0.15)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1, 2], "must be a dict with method, matrix and max"),
        ({"method": "vahadane", "matrix": [[1, 0]]}, "must be a dict with method, matrix and max"),
        ({"method": "reinhard", "matrix": [[1, 0], [0, 1], [0, 0]], "max": [1, 1]}, "stain method must be one of"),
        ({"method": "macenko", "matrix": [[1, 0], [0, 1]], "max": [1, 1]}, "finite 3x2 stain matrix"),
        ({"method": "macenko", "matrix": [[1, 1], [1, 1], [1, 1]], "max": [1, 1]}, "two independent"),
        ({"method": "macenko", "matrix": [[1, 0], [0, 1], [0, 0]], "max": [1, 0]}, "positive maxima"),
    ],
)
def test_malformed_references_are_rejected(bad, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_reference(bad)


def test_reference_from_file(tmp_path, tiles) -> None:
    write_tiff(tmp_path / "target.tif", tiles[1], axes="YXC")
    ref = reference_from_file(tmp_path / "target.tif", method="macenko")
    assert ref["target"] == "target.tif" and check_reference(ref) == ref
    np.testing.assert_allclose(ref["matrix"], stain_reference(tiles[1], method="macenko")["matrix"])
    write_tiff(tmp_path / "gray.tif", tiles[1][..., 0], axes="YX")
    with pytest.raises(ImageFormatError, match=r"stain target 'gray.tif' must be a 2-D RGB image \(Y, X, 3\); got YX"):
        reference_from_file(tmp_path / "gray.tif")
    with pytest.raises(InputError, match="does not exist"):
        reference_from_file(tmp_path / "missing.tif")
    with pytest.raises(ImageFormatError, match="in the target"):
        stain_reference(np.full((8, 8, 3), 255, np.uint8))


# synthetic Beer–Lambert images with known stain vectors

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


@pytest.mark.parametrize("method", ["vahadane", "macenko"])
def test_stain_matrix_recovers_known_stains(method: str, rng: np.random.Generator) -> None:
    img = _synthetic_he(rng, H_E)
    w, _ = fit_stains(img, method=method)
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
