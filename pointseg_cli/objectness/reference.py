"""Slow pure-Python region growing with :mod:`heapq` — the oracle the kernel tests compare against.

It works on multi-indices of the unpadded image with explicit bounds checks, so it shares no
indexing code with :mod:`pointseg_cli.objectness._kernels`; only the neighbour order and step
weights (part of the definition) come from :mod:`pointseg_cli.objectness.grow`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence

import numpy as np

from pointseg_cli.errors import check_choice
from pointseg_cli.objectness.grow import COSTS, MODES, SEED_REFERENCE_RADIUS, neighbour_offsets, step_weights


def grow_reference(
    image: np.ndarray,
    seeds: np.ndarray,
    *,
    channel_axis: int | None = None,
    connectivity: int = 1,
    mode: str = "paper",
    spacing: Sequence[float] | None = None,
    cost: str = "seed",
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(regions int32, distance float64)`` over the spatial shape; no input validation.

    ``image`` is converted to float32 first, as the kernel does, and each step cost is computed in
    float64 in the same order (sum over channels of squared differences, times the step weight).
    With ``cost="seed"`` the difference is to the seed's reference: the mean of the in-bounds
    pixels of its ``(2 r + 1)^ndim`` box (``r = SEED_REFERENCE_RADIUS``), summed in box order.
    """
    check_choice("mode", mode, MODES)
    check_choice("cost", cost, COSTS)
    img = np.asarray(image)
    img = np.moveaxis(img, channel_axis, -1) if channel_axis is not None else img[..., None]
    img = img.astype(np.float32)
    shape = img.shape[:-1]
    offs = neighbour_offsets(len(shape), connectivity)
    weights = step_weights(offs, spacing).tolist()
    values = {idx: [float(v) for v in img[idx]] for idx in np.ndindex(*shape)}

    regions = {idx: 0 for idx in values}
    dist = {idx: float("inf") for idx in values}
    heap: list[tuple[float, int, tuple[int, ...]]] = []
    counter = 0
    refs: dict[int, list[float]] = {}
    r = SEED_REFERENCE_RADIUS
    for i, s in enumerate(np.asarray(seeds, dtype=np.int64).reshape(-1, len(shape))):
        idx = tuple(int(v) for v in s)
        box = [tuple(a + b for a, b in zip(idx, off, strict=True))
               for off in itertools.product(range(-r, r + 1), repeat=len(shape))]
        box = [q for q in box if q in values]
        sums = [0.0] * img.shape[-1]
        for q in box:
            sums = [a + b for a, b in zip(sums, values[q], strict=True)]
        refs[i + 1] = [a / len(box) for a in sums]
        regions[idx] = i + 1
        dist[idx] = 0.0
        heapq.heappush(heap, (0.0, counter, idx))
        counter += 1

    while heap:
        d, _, p = heapq.heappop(heap)
        if mode == "geodesic" and d > dist[p]:
            continue
        for off, wt in zip(offs, weights, strict=True):
            q = tuple(a + b for a, b in zip(p, off, strict=True))
            if q not in values:
                continue
            if mode == "paper" and regions[q] != 0:
                continue
            c = 0.0
            other = refs[regions[p]] if cost == "seed" else values[p]
            for a, b in zip(values[q], other, strict=True):
                diff = a - b
                c += diff * diff
            dq = d + wt * c
            if mode == "geodesic" and not dq < dist[q]:
                continue
            regions[q] = regions[p]
            dist[q] = dq
            heapq.heappush(heap, (dq, counter, q))
            counter += 1

    reg = np.zeros(shape, np.int32)
    dd = np.full(shape, np.inf, np.float64)
    for idx in values:
        reg[idx] = regions[idx]
        dd[idx] = dist[idx]
    return reg, dd


def boundary_reference(regions: np.ndarray, *, connectivity: int = 1) -> np.ndarray:
    """bool mask of pixels with a neighbour in another region (both ids > 0)."""
    offs = neighbour_offsets(regions.ndim, connectivity)
    out = np.zeros(regions.shape, bool)
    for p in np.ndindex(*regions.shape):
        r = regions[p]
        if r <= 0:
            continue
        for off in offs:
            q = tuple(a + b for a, b in zip(p, off, strict=True))
            if all(0 <= v < s for v, s in zip(q, regions.shape, strict=True)) and 0 < regions[q] != r:
                out[p] = True
                break
    return out
