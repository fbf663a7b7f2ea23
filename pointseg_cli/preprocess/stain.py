"""Stain normalisation of RGB H&E images, split into a reusable reference and a per-pixel mapping.

Colours are handled in optical-density (OD) space ``OD = -log((I + 1) / 256)``. A stain model is
a 3x2 stain matrix ``W`` (columns: haematoxylin, eosin; unit norm) and the 99th percentiles of
the concentrations ``H >= 0`` with ``OD ≈ W H`` over the tissue (not near-white) pixels.

``"vahadane"`` (Vahadane et al. 2016, as in the paper) learns ``W`` by sparse non-negative
matrix factorisation: alternating (i) non-negative, L1-penalised least squares for ``H``
(projected coordinate descent) and (ii) non-negative least squares for ``W`` with unit-norm
columns. ``"macenko"`` (Macenko et al. 2009) takes the extreme angles of the OD pixels projected
on their two main principal directions.

The three steps, so that a model can carry the target without the target image:

- :func:`stain_reference` -- the target's stain model as a JSON-able dict (saved in
  ``config.json`` and the ONNX metadata as ``normalization["stain"]``);
- :func:`fit_stains` -- the stain model of one source image (a strided pixel subsample for big
  images);
- :func:`apply_stains` -- per pixel: unmix with the source matrix, rescale the concentrations
  by ``max_target / max_source``, remix with the target matrix. Once the source model is fixed
  the mapping depends on nothing but the pixel, so it can run tile by tile.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from pointseg_cli.errors import ConfigError, ImageFormatError, check_choice

log = logging.getLogger(__name__)

STAIN_METHODS = ("vahadane", "macenko")
#: Pixels used to fit a source image's stains; bigger images are subsampled with a stride.
FIT_MAX_PIXELS = 1 << 22
_APPLY_CHUNK = 1 << 20
_REFERENCE_HE = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])  # columns: H, E (OD, unit norm-ish)
_OD_LUT = -np.log((np.arange(256, dtype=np.float64) + 1.0) / 256.0)

StainModel = tuple[np.ndarray, np.ndarray]


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    """8-bit ``(..., 3)`` view of an RGB image (floats in [0, 1] and integers <= 255 are converted)."""
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ImageFormatError(f"stain normalisation needs an RGB {what} (..., 3); got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f" and image.size and image.max() <= 1.0:
        return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    if image.dtype.kind in "ui" and image.size and image.min() >= 0 and image.max() <= 255:
        return image.astype(np.uint8)
    raise ImageFormatError(f"stain normalisation expects 8-bit RGB (0..255) for the {what}; got dtype {image.dtype}")


def _to_od(rgb: np.ndarray) -> np.ndarray:
    """``(n, 3)`` float64 OD values of ``(..., 3)`` uint8 RGB."""
    return _OD_LUT[rgb.reshape(-1, 3)]


def _tissue(od: np.ndarray, threshold: float = 0.15, max_pixels: int = 200_000, what: str = "image") -> np.ndarray:
    """OD rows of stained (not near-white) pixels, subsampled evenly to at most ``max_pixels``."""
    keep = od[(od > threshold).any(axis=1)]
    if keep.shape[0] < 10:
        raise ImageFormatError(
            f"found only {keep.shape[0]} stained pixels (OD > {threshold}) in the {what}; "
            "expected an H&E image with tissue"
        )
    if keep.shape[0] > max_pixels:
        keep = keep[:: int(np.ceil(keep.shape[0] / max_pixels))]
    return keep


def _order_stains(w: np.ndarray) -> np.ndarray:
    """Unit-norm columns, haematoxylin (larger red OD) first."""
    w = w / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-12)
    return w[:, ::-1] if w[0, 0] < w[0, 1] else w


def macenko_stains(od: np.ndarray, *, alpha: float = 1.0) -> np.ndarray:
    """Stain matrix ``(3, 2)`` from tissue OD pixels ``(n, 3)`` by Macenko's angle percentiles."""
    cov = np.cov(od, rowvar=False)
    _, vecs = np.linalg.eigh(cov)
    plane = vecs[:, [2, 1]]
    plane = plane * np.where(plane[:, :1].sum() < 0, -1, 1)  # principal direction points into positive OD
    proj = od @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100 - alpha])
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    return _order_stains(np.abs(np.stack([v1, v2], axis=1)))


def _nn_l1_concentrations(od: np.ndarray, w: np.ndarray, lam: float, h: np.ndarray, sweeps: int) -> np.ndarray:
    """Non-negative L1-penalised least squares ``min ||od - h w^T||^2 + lam |h|_1`` per pixel.

    Projected coordinate descent over the (two) stain columns; ``od`` is ``(n, 3)``, ``h`` ``(n, 2)``.
    """
    gram = w.T @ w
    rhs = od @ w
    for _ in range(sweeps):
        for k in range(w.shape[1]):
            other = h @ gram[:, k] - h[:, k] * gram[k, k]
            h[:, k] = np.maximum((rhs[:, k] - other - lam / 2) / gram[k, k], 0.0)
    return h


def vahadane_stains(od: np.ndarray, *, lam: float = 0.1, iterations: int = 30) -> np.ndarray:
    """Stain matrix ``(3, 2)`` from tissue OD pixels ``(n, 3)`` by sparse non-negative factorisation."""
    w = _REFERENCE_HE / np.linalg.norm(_REFERENCE_HE, axis=0)
    h = np.maximum(np.linalg.lstsq(w, od.T, rcond=None)[0].T, 0.0)
    for _ in range(iterations):
        h = _nn_l1_concentrations(od, w, lam, h, sweeps=3)
        hh = h.T @ h + 1e-9 * np.eye(2)
        w = np.maximum(np.linalg.solve(hh, h.T @ od).T, 1e-6)  # (3, 2), clipped non-negative
        norms = np.linalg.norm(w, axis=0)
        h = h * norms  # keep the product while normalising the columns
        w = w / norms
    return _order_stains(w)


def _stain_model(rgb: np.ndarray, method: str, what: str = "image") -> StainModel:
    """``(stain matrix (3, 2), 99th percentile of each concentration (2,))`` of uint8 RGB pixels."""
    tissue = _tissue(_to_od(rgb), what=what)
    w = vahadane_stains(tissue) if method == "vahadane" else macenko_stains(tissue)
    conc = np.maximum(np.linalg.lstsq(w, tissue.T, rcond=None)[0], 0.0)
    return w, np.maximum(np.percentile(conc, 99, axis=1), 1e-6)


def _check_model(matrix: Any, maxima: Any, what: str) -> StainModel:
    try:
        w = np.asarray(matrix, dtype=np.float64)
        mx = np.asarray(maxima, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must hold a 3x2 stain matrix and 2 maxima; got {matrix!r}, {maxima!r}") from None
    if w.shape != (3, 2) or mx.shape != (2,) or not (np.isfinite(w).all() and np.isfinite(mx).all()):
        raise ConfigError(
            f"{what} must hold a finite 3x2 stain matrix and 2 maxima; got shapes {w.shape} and {mx.shape}"
        )
    if (mx <= 0).any() or np.linalg.matrix_rank(w) < 2:
        raise ConfigError(f"{what} needs positive maxima and two independent stain vectors; got {w.tolist()}")
    return w, mx


def check_reference(reference: Any, *, what: str = "stain reference") -> dict[str, Any]:
    """Validate a :func:`stain_reference` dict (e.g. read back from JSON); returns a clean copy.

    Raises
    ------
    ConfigError
        Not a dict with ``method``, a 3x2 ``matrix`` and 2 positive ``max`` values.
    """
    if not isinstance(reference, dict) or not {"method", "matrix", "max"} <= set(reference):
        found = sorted(reference) if isinstance(reference, dict) else type(reference).__name__
        raise ConfigError(f"{what} must be a dict with method, matrix and max; got {found}")
    check_choice("stain method", reference["method"], STAIN_METHODS)
    w, mx = _check_model(reference["matrix"], reference["max"], what)
    out: dict[str, Any] = {"method": str(reference["method"]), "matrix": w.tolist(), "max": mx.tolist()}
    if reference.get("target") is not None:
        out["target"] = str(reference["target"])  # provenance only
    return out


def stain_reference(target_rgb: np.ndarray, *, method: str = "vahadane") -> dict[str, Any]:
    """The stain model of a target image, JSON-able.

    Parameters
    ----------
    target_rgb : np.ndarray
        uint8 ``(Y, X, 3)`` H&E image (floats in [0, 1] are accepted).
    method : {"vahadane", "macenko"}

    Returns
    -------
    dict
        ``{"method": str, "matrix": 3x2 list (columns H, E), "max": [2] 99th-percentile concentrations}``.
    """
    check_choice("stain method", method, STAIN_METHODS)
    w, mx = fit_stains(target_rgb, method=method, what="target")
    return {"method": method, "matrix": w.tolist(), "max": mx.tolist()}


def reference_from_file(path: str | Path, *, method: str = "vahadane") -> dict[str, Any]:
    """:func:`stain_reference` of a 2-D RGB image file; the file name is kept as ``target``.

    Raises
    ------
    InputError
        The file does not exist.
    ImageFormatError
        The image is not 2-D RGB ``(Y, X, 3)``, or holds no stained tissue.
    """
    from pointseg_cli.errors import InputError
    from pointseg_cli.io.images import read_image, read_info

    check_choice("stain method", method, STAIN_METHODS)
    path = Path(path)
    if not path.exists():
        raise InputError(f"stain target {str(path)!r} does not exist")
    info = read_info(path)
    if info.ndim != 2 or info.channels != 3:
        raise ImageFormatError(
            f"stain target '{path.name}' must be a 2-D RGB image (Y, X, 3); got {info.axes} {info.shape}"
        )
    ref = stain_reference(read_image(path), method=method)
    ref["target"] = path.name
    log.info("stain reference (%s) from %s: %s", method, path.name, np.round(ref["matrix"], 3).tolist())
    return ref


def fit_stains(image_rgb: np.ndarray, *, method: str = "vahadane", what: str = "image") -> StainModel:
    """Stain model of a source image.

    Parameters
    ----------
    image_rgb : np.ndarray
        ``(..., 3)`` RGB pixels, uint8 (floats in [0, 1] are accepted); above
        :data:`FIT_MAX_PIXELS` pixels an evenly strided subset is used.
    method : {"vahadane", "macenko"}
    what : str
        How errors name the image.

    Returns
    -------
    (matrix, max)
        ``(3, 2)`` stain matrix and ``(2,)`` 99th-percentile concentrations.
    """
    check_choice("stain method", method, STAIN_METHODS)
    pixels = np.asarray(image_rgb)
    if pixels.ndim >= 2 and pixels.shape[-1] == 3:
        pixels = pixels.reshape(-1, 3)
        if pixels.shape[0] > FIT_MAX_PIXELS:
            pixels = pixels[:: math.ceil(pixels.shape[0] / FIT_MAX_PIXELS)]
        pixels = pixels[None]  # (1, n, 3) so that _check_rgb sees an image of RGB pixels
    return _stain_model(_check_rgb(pixels, what), method, what)


def apply_stains(
    rgb_pixels: np.ndarray, source: StainModel, reference: dict[str, Any], *, what: str = "image"
) -> np.ndarray:
    """Map RGB pixels from the ``source`` stain model onto the ``reference`` one, pixel by pixel.

    Parameters
    ----------
    rgb_pixels : np.ndarray
        ``(..., 3)`` RGB, uint8 (floats in [0, 1] are accepted): an image, a slab or a batch of tiles.
    source : (matrix, max)
        :func:`fit_stains` of the image these pixels come from.
    reference : dict
        :func:`stain_reference` of the target.

    Returns
    -------
    np.ndarray
        uint8, the shape of ``rgb_pixels``. Each output pixel depends only on its input pixel.
    """
    ref = check_reference(reference)
    w_src, max_src = _check_model(source[0], source[1], "source stain model")
    w_tgt, max_tgt = np.asarray(ref["matrix"]), np.asarray(ref["max"])
    rgb = _check_rgb(rgb_pixels, what)
    # (2, 3): OD -> source concentrations (least squares), already scaled to the target's range.
    unmix = np.linalg.pinv(w_src) * (max_tgt / max_src)[:, None]
    flat = rgb.reshape(-1, 3)
    out = np.empty(flat.shape, np.uint8)
    for start in range(0, flat.shape[0], _APPLY_CHUNK):
        od = _to_od(flat[start : start + _APPLY_CHUNK])
        # Written out per element (no BLAS) so that a pixel's result never depends on the chunk size.
        h = np.maximum(od[:, 0:1] * unmix[0, 0] + od[:, 1:2] * unmix[0, 1] + od[:, 2:3] * unmix[0, 2], 0.0)
        e = np.maximum(od[:, 0:1] * unmix[1, 0] + od[:, 1:2] * unmix[1, 1] + od[:, 2:3] * unmix[1, 2], 0.0)
        rgb_out = 256.0 * np.exp(-(h * w_tgt[:, 0] + e * w_tgt[:, 1])) - 1.0
        out[start : start + len(od)] = np.clip(np.rint(rgb_out), 0, 255)
    return out.reshape(rgb.shape)


def normalize_to_reference(image_rgb: np.ndarray, reference: dict[str, Any], *, what: str = "image") -> np.ndarray:
    """Fit the stains of ``image_rgb`` and map them onto ``reference``; uint8 of the image's shape."""
    ref = check_reference(reference)
    source = fit_stains(image_rgb, method=ref["method"], what=what)
    return apply_stains(image_rgb, source, ref, what=what)


def stain_normalize(image: np.ndarray, target: np.ndarray, *, method: str = "vahadane") -> np.ndarray:
    """Map the stain colours of RGB ``image`` onto those of RGB ``target``.

    Parameters
    ----------
    image, target : np.ndarray
        uint8 ``(Y, X, 3)`` (or ``(Z, Y, X, 3)``) H&E images; floats in [0, 1] are accepted.
    method : {"vahadane", "macenko"}

    Returns
    -------
    np.ndarray
        uint8, the shape of ``image``.
    """
    check_choice("stain method", method, STAIN_METHODS)
    src = _check_rgb(image, "image")
    ref = stain_reference(_check_rgb(target, "target"), method=method)
    source = fit_stains(src, method=method)
    log.debug(
        "stain matrices (%s): source %s target %s",
        method,
        source[0].round(3).tolist(),
        np.round(ref["matrix"], 3).tolist(),
    )
    return apply_stains(src, source, ref)
