"""Preview PNGs of segment outputs: object outlines over the image, orthogonal views of volumes.

A 2D image gives one panel. A volume gives the classic orthogonal-view layout in one PNG: the
middle XY slice at the top left, the YZ section (Z running to the right) beside it and the XZ
section (Z running down) below it, thin lines marking where the sections cut; Z is stretched by
the voxel size so that objects keep their shape. In every panel objects are tinted and outlined:
by class colour, or, when an instance image is given, each object in its own colour.

Pure numpy (PIL only to save); the panels are built from planes the caller reads, so a preview
never needs the whole volume in memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Overlay colours for class ids 1.. (background is not coloured).
PALETTE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
    ],
    dtype=np.float32,
)
#: Grey of the gaps between panels and of the section markers.
_GAP = np.array([40, 40, 40], np.uint8)
_MARK = np.array([255, 255, 255], np.float32)


def instance_colours(ids: np.ndarray) -> np.ndarray:
    """A bright, stable RGB colour per object id (float32 ``(..., 3)``); neighbours rarely share one."""
    ids = ids.astype(np.uint64)
    h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFFFF)  # Knuth's multiplicative hash
    hue = (h % np.uint64(360)).astype(np.float32) / 60.0
    x = 1.0 - np.abs(hue % 2.0 - 1.0)
    sector = hue.astype(np.int64)
    zeros, ones = np.zeros_like(hue), np.ones_like(hue)
    r = np.choose(sector % 6, [ones, x, zeros, zeros, x, ones])
    g = np.choose(sector % 6, [x, ones, ones, x, zeros, zeros])
    b = np.choose(sector % 6, [zeros, zeros, x, ones, ones, x])
    rgb = np.stack([r, g, b], axis=-1)
    return (64.0 + 191.0 * rgb).astype(np.float32)


def outlines(ids: np.ndarray) -> np.ndarray:
    """Boolean ``(Y, X)``: object pixels (id > 0) with a 4-neighbour of another id (the object's rim)."""
    edge = np.zeros(ids.shape, bool)
    edge[1:] |= ids[1:] != ids[:-1]
    edge[:-1] |= ids[:-1] != ids[1:]
    edge[:, 1:] |= ids[:, 1:] != ids[:, :-1]
    edge[:, :-1] |= ids[:, :-1] != ids[:, 1:]
    return edge & (ids > 0)


def _to_rgb(plane: np.ndarray) -> np.ndarray:
    if plane.ndim == 2:
        rgb = np.repeat(plane[..., None], 3, axis=-1)
    elif plane.shape[-1] >= 3:
        rgb = plane[..., :3]
    else:
        rgb = np.concatenate([plane, np.zeros((*plane.shape[:2], 3 - plane.shape[-1]), plane.dtype)], axis=-1)
    return np.clip(rgb, 0.0, 1.0).astype(np.float32) * 255.0


def overlay(
    plane: np.ndarray,
    labels: np.ndarray,
    *,
    instances: np.ndarray | None = None,
    alpha: float = 0.3,
    max_size: int = 1024,
) -> np.ndarray:
    """RGB uint8 panel: objects tinted and outlined over a normalised image plane.

    Parameters
    ----------
    plane : numpy.ndarray
        ``(Y, X)`` or ``(Y, X, C)`` intensities in ``[0, 1]`` (the first three channels are shown).
    labels : numpy.ndarray
        ``(Y, X)`` class ids.
    instances : numpy.ndarray, optional
        ``(Y, X)`` object ids; objects then get their own colours and outlines.
    alpha : float
        Opacity of the tint inside objects (outlines are opaque).
    max_size : int
        Larger planes are subsampled with a stride so the preview stays small.
    """
    step = max(1, int(np.ceil(max(labels.shape) / max_size)))
    rgb = _to_rgb(plane[::step, ::step])
    labels = labels[::step, ::step]
    mask = labels > 0
    if instances is not None:
        ids = instances[::step, ::step]
        colours = instance_colours(ids)
        mask = ids > 0
    else:
        ids = labels
        colours = PALETTE[(labels.astype(np.int64) - 1) % len(PALETTE)]
    if mask.any():
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * colours[mask]
        rim = outlines(ids)
        rgb[rim] = colours[rim]
    return np.round(rgb).astype(np.uint8)


@dataclass(frozen=True)
class Section:
    """One plane of a volume for the preview: image ``(A, B[, C])`` in ``[0, 1]``, class ids, object ids."""

    image: np.ndarray
    labels: np.ndarray
    instances: np.ndarray | None = None


def _stretch_rows(panel: np.ndarray, factor: float) -> np.ndarray:
    rows = max(1, int(round(panel.shape[0] * factor)))
    index = np.minimum((np.arange(rows) / factor).astype(np.int64), panel.shape[0] - 1)
    return panel[index]


def _mark(panel: np.ndarray, *, row: int | None = None, col: int | None = None) -> np.ndarray:
    out = panel.astype(np.float32)
    if row is not None and 0 <= row < out.shape[0]:
        out[row] = 0.5 * out[row] + 0.5 * _MARK
    if col is not None and 0 <= col < out.shape[1]:
        out[:, col] = 0.5 * out[:, col] + 0.5 * _MARK
    return np.round(out).astype(np.uint8)


def orthogonal_views(
    xy: Section, xz: Section, yz: Section, *, z_scale: float = 1.0, cut: tuple[int, int, int] | None = None,
    gap: int = 4,
) -> np.ndarray:
    """One RGB image with the XY slice, the YZ section to its right and the XZ section below.

    Parameters
    ----------
    xy, xz, yz : Section
        ``xy`` is ``(Y, X)``, ``xz`` is ``(Z, X)``, ``yz`` is ``(Z, Y)`` (all at the same in-plane
        stride; ``yz`` is transposed here so that Z runs to the right).
    z_scale : float
        Display pixels per Z step relative to an in-plane pixel (e.g. 4 for Z steps of 2 µm and
        pixels of 0.5 µm); clamped to [0.25, 16].
    cut : (z, y, x), optional
        Where the sections cut, in the planes' pixels, drawn as thin lines.
    """
    z_scale = float(min(max(z_scale, 0.25), 16.0))
    p_xy = overlay(xy.image, xy.labels, instances=xy.instances, max_size=1 << 30)
    p_xz = _stretch_rows(overlay(xz.image, xz.labels, instances=xz.instances, max_size=1 << 30), z_scale)
    p_yz = _stretch_rows(overlay(yz.image, yz.labels, instances=yz.instances, max_size=1 << 30), z_scale)
    p_yz = np.ascontiguousarray(np.transpose(p_yz, (1, 0, 2)))
    if cut is not None:
        z, y, x = cut
        zs = int(round((z + 0.5) * z_scale))
        p_xy = _mark(p_xy, row=y, col=x)
        p_xz = _mark(p_xz, row=zs, col=x)
        p_yz = _mark(p_yz, row=y, col=zs)
    h = p_xy.shape[0] + gap + p_xz.shape[0]
    w = p_xy.shape[1] + gap + p_yz.shape[1]
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = _GAP
    canvas[: p_xy.shape[0], : p_xy.shape[1]] = p_xy
    canvas[: p_yz.shape[0], p_xy.shape[1] + gap :] = p_yz[:, : w - p_xy.shape[1] - gap]
    canvas[p_xy.shape[0] + gap :, : p_xz.shape[1]] = p_xz
    return canvas


def save_preview(path: str | Path, rgb: np.ndarray, *, provenance: Mapping[str, Any] | None = None) -> None:
    """Save a preview RGB image as PNG at ``path`` (a temporary path), provenance in a text chunk."""
    from pointseg_cli.io.writers import save_png

    save_png(path, rgb, text={"pointseg": provenance} if provenance else None)


def stride_for(shape: Sequence[int], max_size: int) -> int:
    """The stride that brings the largest of ``shape`` to at most ``max_size``."""
    return max(1, -(-max(shape) // max_size))
