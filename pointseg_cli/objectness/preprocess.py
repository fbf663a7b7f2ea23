"""Optional preprocessing before region growing: stain normalisation, diffusion, equalisation.

- Stain normalisation of RGB H&E images to a target image, in optical-density (OD) space
  ``OD = -log((I + 1) / 256)``: estimate a 3x2 stain matrix ``W`` (columns: haematoxylin, eosin)
  and concentrations ``H >= 0`` with ``OD ≈ W H`` for source and target; rescale the source
  concentrations so their 99th percentiles match the target's and rebuild the RGB image with the
  target's stain matrix.

  ``"vahadane"`` (Vahadane et al. 2016, as in the paper) learns ``W`` by sparse non-negative
  matrix factorisation: alternating (i) non-negative, L1-penalised least squares for ``H``
  (projected coordinate descent) and (ii) non-negative least squares for ``W`` with unit-norm
  columns, on the tissue pixels (not near-white). ``"macenko"`` (Macenko et al. 2009) takes the
  extreme angles of the OD pixels projected on their two main principal directions.
- Perona–Malik anisotropic diffusion (edge-preserving smoothing), 2-D and 3-D, per channel.
- Histogram equalisation (scikit-image ``equalize_hist``), e.g. for SIM volumes.
"""

from __future__ import annotations

import logging

import numpy as np
from numba import njit

from pointseg_cli.errors import ConfigError, ImageFormatError, check_choice

log = logging.getLogger(__name__)

STAIN_METHODS = ("vahadane", "macenko")
_REFERENCE_HE = np.array([[0.65, 0.07], [0.70, 0.99], [0.29, 0.11]])  # columns: H, E (OD, unit norm-ish)


def _check_rgb(image: np.ndarray, what: str) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim < 3 or image.shape[-1] != 3:
        raise ImageFormatError(f"stain normalisation needs an RGB {what} (..., 3); got shape {image.shape}")
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind == "f" and image.size and image.max() <= 1.0:
        return np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    if image.dtype.kind in "ui" and image.size and image.max() <= 255:
        return image.astype(np.uint8)
    raise ImageFormatError(f"stain normalisation expects 8-bit RGB (0..255) for the {what}; got dtype {image.dtype}")


def _to_od(rgb: np.ndarray) -> np.ndarray:
    """``(n, 3)`` OD values of ``(..., 3)`` uint8 RGB."""
    return -np.log((rgb.reshape(-1, 3).astype(np.float64) + 1.0) / 256.0)


def _tissue(od: np.ndarray, threshold: float = 0.15, max_pixels: int = 200_000) -> np.ndarray:
    """OD rows of stained (not near-white) pixels, subsampled evenly to at most ``max_pixels``."""
    keep = od[(od > threshold).any(axis=1)]
    if keep.shape[0] < 10:
        raise ImageFormatError(
            f"found only {keep.shape[0]} stained pixels (OD > {threshold}); expected an H&E image with tissue"
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


def _stain_model(rgb: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """``(stain matrix (3, 2), 99th percentile of each concentration (2,))`` of an RGB image."""
    od = _to_od(rgb)
    tissue = _tissue(od)
    w = vahadane_stains(tissue) if method == "vahadane" else macenko_stains(tissue)
    conc = np.maximum(np.linalg.lstsq(w, tissue.T, rcond=None)[0], 0.0)
    return w, np.maximum(np.percentile(conc, 99, axis=1), 1e-6)


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
    tgt = _check_rgb(target, "target")
    w_src, max_src = _stain_model(src, method)
    w_tgt, max_tgt = _stain_model(tgt, method)
    log.debug("stain matrices (%s): source %s target %s", method, w_src.round(3).tolist(), w_tgt.round(3).tolist())
    od = _to_od(src)
    conc = np.maximum(np.linalg.lstsq(w_src, od.T, rcond=None)[0], 0.0)
    conc *= (max_tgt / max_src)[:, None]
    out = 256.0 * np.exp(-(w_tgt @ conc)) - 1.0
    return np.clip(np.rint(out.T), 0, 255).astype(np.uint8).reshape(src.shape)


@njit(cache=True)
def _perona_malik(vol, iterations, kappa, step):  # noqa: ANN001, ANN202
    """In-place Perona–Malik diffusion of a float32 ``(Z, Y, X)`` volume, zero-flux borders.

    Conductance ``g(t) = exp(-(t / kappa)**2)`` on each face difference (explicit scheme).
    """
    nz, ny, nx = vol.shape
    upd = np.empty_like(vol)
    inv_k2 = 1.0 / (kappa * kappa)
    for _ in range(iterations):
        for z in range(nz):
            for y in range(ny):
                for x in range(nx):
                    c = vol[z, y, x]
                    acc = 0.0
                    if z > 0:
                        d = vol[z - 1, y, x] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    if z < nz - 1:
                        d = vol[z + 1, y, x] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    if y > 0:
                        d = vol[z, y - 1, x] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    if y < ny - 1:
                        d = vol[z, y + 1, x] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    if x > 0:
                        d = vol[z, y, x - 1] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    if x < nx - 1:
                        d = vol[z, y, x + 1] - c
                        acc += np.exp(-d * d * inv_k2) * d
                    upd[z, y, x] = c + step * acc
        vol[:] = upd
    return vol


def anisotropic_diffusion(
    image: np.ndarray,
    *,
    iterations: int,
    kappa: float = 0.1,
    step: float | None = None,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Perona–Malik edge-preserving smoothing of a 2-D or 3-D image, each channel separately.

    Parameters
    ----------
    image : np.ndarray
        ``(Y, X)`` or ``(Z, Y, X)`` plus an optional channel axis; intensities best in [0, 1].
    iterations : int
        Number of explicit diffusion steps (0 returns a float32 copy).
    kappa : float
        Edge threshold in intensity units: differences much larger than ``kappa`` barely diffuse.
    step : float, optional
        Time step; default ``1 / (2 * ndim + 1)``, inside the stability limit ``1 / (2 * ndim)``.
    channel_axis : int, optional

    Returns
    -------
    np.ndarray
        float32, same shape as ``image``.
    """
    if iterations < 0:
        raise ConfigError(f"diffusion iterations must be >= 0; got {iterations}")
    if not kappa > 0:
        raise ConfigError(f"diffusion kappa must be > 0; got {kappa}")
    x = np.asarray(image, np.float32)
    x = np.moveaxis(x, channel_axis, -1) if channel_axis is not None else x[..., None]
    ndim = x.ndim - 1
    if ndim not in (2, 3):
        raise ImageFormatError(f"diffusion needs a 2-D or 3-D image; got spatial shape {x.shape[:-1]}")
    limit = 1.0 / (2 * ndim)
    step = 1.0 / (2 * ndim + 1) if step is None else float(step)
    if not 0 < step <= limit:
        raise ConfigError(f"diffusion step must be in (0, {limit:.4g}] for {ndim}-D images; got {step}")
    out = np.empty_like(x)
    for c in range(x.shape[-1]):
        vol = np.array(x[..., c], dtype=np.float32, order="C").reshape((1,) * (3 - ndim) + x.shape[:-1])
        out[..., c] = _perona_malik(vol, int(iterations), float(kappa), float(step)).reshape(x.shape[:-1])
    return np.moveaxis(out, -1, channel_axis) if channel_axis is not None else out[..., 0]


def equalize(image: np.ndarray, *, channel_axis: int | None = None) -> np.ndarray:
    """Histogram equalisation (scikit-image) of each channel over the whole image; float32 in [0, 1]."""
    from skimage.exposure import equalize_hist

    x = np.asarray(image)
    x = np.moveaxis(x, channel_axis, -1) if channel_axis is not None else x[..., None]
    out = np.empty(x.shape, np.float32)
    for c in range(x.shape[-1]):
        ch = x[..., c]
        out[..., c] = equalize_hist(ch) if ch.max() > ch.min() else 0.0
    return np.moveaxis(out, -1, channel_axis) if channel_axis is not None else out[..., 0]
