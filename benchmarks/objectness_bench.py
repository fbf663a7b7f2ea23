"""Objectness region growing vs scikit-image watershed and SciPy Dijkstra, same image, same seeds.

Cases: 2-D 1000x1000 with 600 seeds and 3-D 48x384x384 with 1,500 seeds, on a synthetic image of
noisy blobs (one seed per blob centre), normalised to [0, 1]. Every method is timed ``--repeat``
times (default 5), interleaved so that all see the same machine load, and the best time is kept;
numba is warmed up first.

Peers:
- ``skimage.segmentation.watershed`` (compiled priority flood) with the normalised image as
  elevation and the seeds as markers, face connectivity;
- ``scipy.sparse.csgraph.dijkstra(min_only=True)`` on the face-neighbour grid graph whose edge
  weights are our step costs (squared intensity differences, plus 1e-12 because sparse graphs
  drop zero-weight edges). It solves the same problem as our ``mode="geodesic"``; graph
  construction is timed and included.

Ours runs with both step costs (``cost="seed"``, the default, and ``cost="parent"``); the SciPy
graph uses the parent cost's edge weights (the seed cost depends on the source region, so it is
not a fixed graph), and the agreement check compares it with our geodesic parent-cost distances.

Printed per case: seconds for each method, ratios (ours / peer), peak extra memory per voxel
(tracemalloc, measured in a separate run so it does not disturb the timings) and the numba compile
(or cache-load) time of the first call, reported apart; at the end a summary of ours (the default
``paper``/``seed``) vs watershed for both cases. Usage::

    python benchmarks/objectness_bench.py            # both cases
    python benchmarks/objectness_bench.py --small    # quick: 2-D 300x300, 3-D 16x128x128
    python benchmarks/objectness_bench.py --skip-scipy-3d --repeat 3
    python benchmarks/objectness_bench.py --costs data/bbbc007   # quality, not speed

``--costs FOLDER`` compares the two step costs on images with instance masks (``<stem>.labels.tif``
beside ``<stem>.tif``): one point per instance, images split by sorted index ``i`` (``i % 7 == 5``
validation, ``== 6`` test, others train, as in docs/training.md; with fewer than 6 images the
last one is the test image); ``w`` is chosen on the train
images (pooled IoU of ``Obj > 0.5`` with the foreground) and the validation + test images report
pooled IoU, mean objectness inside / outside the objects and the fraction of boundary-background
pixels that lie inside objects.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from collections.abc import Callable

import numpy as np


def synthetic(shape: tuple[int, ...], n_seeds: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy Gaussian blobs in [0, 1] (float32) and their centres ``(n, ndim)`` int64 (distinct)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(shape)), size=n_seeds, replace=False)
    centres = np.stack(np.unravel_index(flat, shape), axis=1).astype(np.int64)
    spikes = np.zeros(shape, np.float32)
    spikes[tuple(centres.T)] = 1.0
    sigma = 4.0 if len(shape) == 2 else (1.5, 4.0, 4.0)
    img = gaussian_filter(spikes, sigma)
    img /= img.max()
    img += rng.normal(0, 0.03, shape).astype(np.float32)
    lo, hi = np.percentile(img[:: max(1, img.shape[0] // 8)], [1, 99.8])
    return np.clip((img - lo) / (hi - lo), 0, 1).astype(np.float32), centres


def grid_graph(img: np.ndarray):  # noqa: ANN201
    """CSR face-neighbour graph (both directions) with squared-difference weights."""
    from scipy.sparse import csr_matrix

    idx = np.arange(img.size, dtype=np.int64).reshape(img.shape)
    rows, cols, vals = [], [], []
    for axis in range(img.ndim):
        a = [slice(None)] * img.ndim
        b = [slice(None)] * img.ndim
        a[axis] = slice(0, -1)
        b[axis] = slice(1, None)
        wgt = (img[tuple(b)].astype(np.float64) - img[tuple(a)]) ** 2 + 1e-12
        ia, ib = idx[tuple(a)].ravel(), idx[tuple(b)].ravel()
        rows += [ia, ib]
        cols += [ib, ia]
        vals += [wgt.ravel(), wgt.ravel()]
    return csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(img.size, img.size))


def run_scipy(img: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    from scipy.sparse.csgraph import dijkstra

    graph = grid_graph(img)
    flat = np.ravel_multi_index(tuple(seeds.T), img.shape)
    return dijkstra(graph, directed=True, indices=flat, min_only=True).reshape(img.shape)


def run_watershed(img: np.ndarray, markers: np.ndarray) -> np.ndarray:
    from skimage.segmentation import watershed

    return watershed(img, markers, connectivity=1)


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def peak_bytes(fn: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    out = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    del out
    return peak


DEFAULT = "ours paper/seed"


def case(name: str, shape: tuple[int, ...], n_seeds: int, *, scipy: bool, repeat: int) -> dict[str, float]:
    """Time every method ``repeat`` times, interleaved; returns the best seconds per method."""
    from pointseg_cli.objectness import compute_objectness

    img, seeds = synthetic(shape, n_seeds)
    classes = np.ones(len(seeds), np.int32)
    markers = np.zeros(shape, np.int32)
    markers[tuple(seeds.T)] = np.arange(1, len(seeds) + 1)
    n = img.size
    print(f"\n== {name}: shape {shape}, {len(seeds)} seeds, {n / 1e6:.1f} M voxels, best of {repeat}")

    def ours(mode: str, cost: str) -> Callable[[], object]:
        return lambda: compute_objectness(img, seeds, classes, w=2.0, mode=mode, cost=cost)

    ours_rows = [(f"ours {mode}/{cost}", ours(mode, cost)) for mode in ("paper", "geodesic")
                 for cost in ("seed", "parent")]
    methods = [*ours_rows, ("skimage watershed", lambda: run_watershed(img, markers))]
    if scipy:
        methods.append(("scipy dijkstra", lambda: run_scipy(img, seeds)))
    times = {label: float("inf") for label, _ in methods}
    for _ in range(repeat):
        for label, fn in methods:
            times[label] = min(times[label], timed(fn))
    mem = {label: peak_bytes(fn) for label, fn in methods}
    if scipy and n <= 2_000_000:  # agreement check: geodesic distances equal scipy's (up to the 1e-12 offsets)
        d_ours = compute_objectness(img, seeds, classes, w=1.0, mode="geodesic", cost="parent").distance
        d_sp = run_scipy(img, seeds)
        print(f"   max |d_geodesic - d_scipy| = {np.abs(d_ours - d_sp).max():.2e}")
    print(f"   {'method':<24}{'seconds':>9}{'peak extra B/voxel':>20}")
    for label, _ in methods:
        print(f"   {label:<24}{times[label]:>9.3f}{mem[label] / n:>20.1f}")
    ws = times["skimage watershed"]
    for ours_label, _ in ours_rows:
        line = f"   {ours_label}: {times[ours_label] / ws:.2f}x watershed's time (target <= 1.0)"
        if "scipy dijkstra" in times:
            line += f", {times['scipy dijkstra'] / times[ours_label]:.1f}x faster than scipy (target >= 3)"
        print(line)
    return times


def cost_report(folder: str) -> None:
    """Quality of both step costs on a folder of images with instance masks (see the module docstring)."""
    from pointseg_cli.annotate import points_from_masks
    from pointseg_cli.io.images import find_images, image_stem, read_image
    from pointseg_cli.objectness import DEFAULT_W, ObjectnessConfig, objectness_for_image
    from pointseg_cli.objectness.tune import best_w

    paths = [p for p in find_images([folder]) if not p.name.endswith(".labels.tif")]
    table = points_from_masks(folder, images=folder).table
    role = {image_stem(p): ("val" if i % 7 == 5 else "test" if i % 7 == 6 else "train") for i, p in enumerate(paths)}
    if len(paths) >= 2 and all(r == "train" for r in role.values()):  # fewer than 6 images: hold out the last
        role[image_stem(paths[-1])] = "test"
    data = [(image_stem(p), read_image(p), read_image(p.with_name(image_stem(p) + ".labels.tif")) > 0)
            for p in paths]
    print(f"\n== step costs on {folder}: {sum(r == 'train' for r in role.values())} train images, "
          f"{sum(r != 'train' for r in role.values())} val+test images, {len(table)} points")
    print(f"   {'cost':<8}{'mode':<10}{'w (train)':>10}{'IoU train':>10}{'IoU v+t':>9}{'Obj in':>8}{'Obj out':>8}"
          f"{'bg in obj':>10}")
    for cost in ("parent", "seed"):
        for mode in ("paper", "geodesic"):
            cfg = ObjectnessConfig(w=DEFAULT_W, cost=cost, mode=mode)
            dist = {s: objectness_for_image(im, table.for_image(s), config=cfg) for s, im, _ in data}
            train = [s for s, *_ in data if role[s] == "train"]
            w, iou_train = best_w(np.concatenate([dist[s].distance.ravel() for s in train]),
                                  np.concatenate([fg.ravel() for s, _, fg in data if role[s] == "train"]))
            inter = union = 0
            inside, outside, bg_in = [], [], []
            for s, _, fg in data:
                if role[s] == "train":
                    continue
                obj = np.exp(-w * dist[s].distance.astype(np.float64))
                inter += int((fg & (obj > 0.5)).sum())
                union += int((fg | (obj > 0.5)).sum())
                inside.append(obj[fg].mean())
                outside.append(obj[~fg].mean())
                bg = dist[s].background
                bg_in.append((bg & fg).sum() / max(int(bg.sum()), 1))
            print(f"   {cost:<8}{mode:<10}{w:>10.3g}{iou_train:>10.3f}{inter / union:>9.3f}{np.mean(inside):>8.3f}"
                  f"{np.mean(outside):>8.3f}{np.mean(bg_in):>10.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", action="store_true", help="small sizes for a quick run")
    ap.add_argument("--skip-scipy-3d", action="store_true", help="skip the slow, memory-hungry 3-D scipy peer")
    ap.add_argument("--costs", metavar="FOLDER", help="only compare the step costs' quality on masked images")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per method (the best is kept)")
    args = ap.parse_args()
    if args.costs:
        cost_report(args.costs)
        return
    load = os.getloadavg()
    print(f"CPU: {_cpu_model()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    t0 = time.perf_counter()
    from pointseg_cli.objectness import compute_objectness

    t_import = time.perf_counter() - t0
    t0 = time.perf_counter()
    for mode in ("paper", "geodesic"):
        for cost in ("seed", "parent"):
            kw = {"w": 1.0, "mode": mode, "cost": cost}
            compute_objectness(np.zeros((3, 3, 2), np.float32), [[0, 0]], [1], channel_axis=-1, **kw)
            compute_objectness(np.zeros((3, 3), np.float32), [[0, 0]], [1], **kw)
            compute_objectness(np.zeros((3, 3, 3), np.float32), [[0, 0, 0]], [1], **kw)
    print(f"numba: import {t_import:.2f} s, first calls (compile, or load from cache) {time.perf_counter() - t0:.2f} s")

    if args.small:
        cases = [("2-D", (300, 300), 60, True), ("3-D", (16, 128, 128), 120, not args.skip_scipy_3d)]
    else:
        cases = [("2-D", (1000, 1000), 600, True), ("3-D", (48, 384, 384), 1500, not args.skip_scipy_3d)]
    results = [(name, shape, n, case(name, shape, n, scipy=sp, repeat=args.repeat)) for name, shape, n, sp in cases]
    print("\n== summary: ours (default paper/seed) vs skimage watershed, same image and seeds, best of "
          f"{args.repeat}")
    for name, shape, n, times in results:
        ours, ws = times[DEFAULT], times["skimage watershed"]
        print(f"   {name} {'x'.join(map(str, shape))}, {n} seeds: ours {ours:.3f} s, watershed {ws:.3f} s, "
              f"ratio {ours / ws:.2f} (target <= 1.0)")
    load = os.getloadavg()
    print(f"   load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
