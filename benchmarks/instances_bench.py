"""Instance post-processing: time of each method vs SciPy connected components, peak memory of the
streamed and in-memory paths, and (``--segment``) what instances add to ``pointseg segment``.

Data: a synthetic 64x512x512 class map of touching balls (about 1,500 nuclei, radius 5-9
pixels, two classes) and a centre map (a Gaussian bump per ball), stored as ``.npy`` files.

Peer: ``scipy.ndimage.label`` of the foreground (face connectivity), the least any instance
method has to do; every method is reported as a ratio to it.

Each measurement runs in a fresh process. ``reference`` loads both maps and runs the plain
whole-array formulation (:func:`pointseg_cli.infer.watershed_reference.reference_instances`:
every step over the whole volume, scikit-image's watershed per class, as pointseg did before the
per-component path); ``memory`` loads both maps and calls :func:`label_instances`; ``streamed``
memory-maps them and calls :func:`instances_from_maps` (default memory budget) writing to a
memory-mapped output, as ``segment`` does. Peak memory is the process's maximum resident set size
minus its size after imports; the in-memory runs include the arrays they load. Both fast paths are
checked to equal the reference voxel for voxel.

``--segment`` times ``segment_file`` with the default ``nuclei-3d`` model on a synthetic nuclei
volume (64x512x512, ``pointseg demo-data``'s generator) without instances and with each method,
interleaved in one process, and prints the share the instance step adds. ``centers`` uses the
model's centre output; for a model without one (older ``nuclei-3d`` releases) it wraps the model
with a stand-in centre output (the foreground probability times the normalised intensity,
computed per tile) so that the centre map is blended, spooled and segmented as it would be.

Usage::

    python benchmarks/instances_bench.py            # 64x512x512
    python benchmarks/instances_bench.py --small    # 32x256x256
    python benchmarks/instances_bench.py --segment  # segment time with and without instances
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_data(shape: tuple[int, int, int], folder: Path, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cls = np.zeros(shape, np.uint8)
    cen = np.zeros(shape, np.float32)
    n = int(np.prod(shape) / 11_000)
    for k in range(n):
        r = rng.uniform(5, 9)
        c = rng.uniform(0, shape)
        lo = np.maximum(np.floor(c - r).astype(int), 0)
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, shape)
        grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        d2 = sum((g - ci) ** 2 for g, ci in zip(grid, c, strict=True)) / r**2
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        cls[box][d2 < 1] = 1 + k % 2
        np.maximum(cen[box], np.exp(-2 * d2).astype(np.float32), out=cen[box])
    np.save(folder / "cls.npy", cls)
    np.save(folder / "cen.npy", cen)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def child(folder: Path, what: str, method: str) -> dict[str, float]:
    from scipy import ndimage as ndi

    from pointseg_cli.infer.instances import InstanceConfig, instances_from_maps, label_instances
    from pointseg_cli.infer.watershed_reference import reference_instances

    base = _rss_mb()
    t0 = time.perf_counter()
    if what == "scipy":
        cls = np.load(folder / "cls.npy")
        _, n = ndi.label(cls > 0)
    elif what in ("reference", "memory"):
        cls, cen = np.load(folder / "cls.npy"), np.load(folder / "cen.npy")
        fn = reference_instances if what == "reference" else label_instances
        ids = fn(cls, cen, config=InstanceConfig(method=method))
        n = int(ids.max())
        np.save(folder / f"{what}_{method}.npy", ids)
    else:
        cls = np.load(folder / "cls.npy", mmap_mode="r")
        cen = np.load(folder / "cen.npy", mmap_mode="r")
        out = np.lib.format.open_memmap(folder / f"streamed_{method}.npy", mode="w+", dtype=np.uint32,
                                        shape=cls.shape)
        res = instances_from_maps(cls, cen, out, config=InstanceConfig(method=method))
        out.flush()
        n = res.n_instances
    return {"seconds": time.perf_counter() - t0, "peak_mb": _rss_mb() - base, "n": n}


def run(folder: Path, what: str, method: str = "") -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", str(folder), what, method or "-"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class SyntheticCentres:
    """A model plus a stand-in centre output: foreground probability times normalised intensity."""

    def __init__(self, inner: object) -> None:
        from dataclasses import replace

        self.inner = inner
        self.metadata = replace(inner.metadata, outputs=("logits", "centers"))
        self.provider = inner.provider
        self.path = getattr(inner, "path", None)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.inner.predict(batch)

    def predict_all(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        logits = self.inner.predict(batch)
        fg = 1.0 / (1.0 + np.exp(logits[:, :1] - logits[:, 1:].max(axis=1, keepdims=True)))
        return {"logits": logits, "centers": (fg * np.clip(batch[:, :1], 0, 1)).astype(np.float32)}


def segment_overhead(shape: tuple[int, int, int], repeats: int) -> None:
    """``segment_file`` with nuclei-3d without instances and with each method, interleaved."""
    import os
    import shutil

    import tifffile

    from pointseg_cli.demo.nuclei3d import make_nuclei_volume
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, segment_file
    from pointseg_cli.zoo import fetch

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        vol = folder / "nuclei.tif"
        sample = make_nuclei_volume(shape, seed=0)
        tifffile.imwrite(vol, sample.image, metadata={"axes": "ZYX"})
        pred = OrtPredictor(fetch("nuclei-3d"), device="cpu")
        centred = pred if pred.metadata.has_centers else SyntheticCentres(pred)
        head = "its centre output" if centred is pred else "a stand-in centre output (see the module docstring)"
        runs = {"none": pred, "components": pred, "distance": pred, "centers": centred}
        best = dict.fromkeys(runs, float("inf"))
        objects: dict[str, int] = {}
        segment_file(vol, folder / "warm", pred, options=SegmentOptions(instances="none"))  # warm-up
        for _ in range(repeats):  # interleaved, so that load changes hit all alike
            for method, p in runs.items():
                res = segment_file(vol, folder / "out", p, options=SegmentOptions(instances=method))
                best[method] = min(best[method], res.seconds)
                objects[method] = res.n_objects or 0
                shutil.rmtree(folder / "out")
    print(f"segment, default model nuclei-3d on CPU ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}, shared), synthetic nuclei {shape} ({int(sample.labels.max())} nuclei), "
          f"best of {repeats}; centers with {head}:")
    print(f"  {'instances':<12}{'seconds':>9}{'objects':>9}{'added':>9}")
    for method, sec in best.items():
        added = "" if method == "none" else f"{(sec / best['none'] - 1) * 100:+.0f} %"
        print(f"  {method:<12}{sec:>9.2f}{objects[method] if method != 'none' else '':>9}{added:>9}")
    for method in ("distance", "centers"):
        print(f"  ratio segment with {method} / without: {best[method] / best['none']:.2f} (target <= 1.30)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--segment", action="store_true", help="segment time with and without instances")
    ap.add_argument("--repeats", type=int, default=2, help="--segment: interleaved repeats (best of)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.child[2])))
        return
    shape = (32, 256, 256) if args.small else (64, 512, 512)
    if args.segment:
        segment_overhead(shape, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(shape, folder)
        peer = run(folder, "scipy")
        print(f"volume {shape}; scipy.ndimage.label of the foreground: {peer['seconds']:.2f} s, "
              f"{int(peer['n'])} components")
        print(f"{'method':<11}{'path':<11}{'seconds':>9}{'x label':>9}{'peak MB':>9}{'objects':>9}")
        for method in ("components", "distance", "centers"):
            rows = {what: run(folder, what, method) for what in ("reference", "memory", "streamed")}
            ref = np.load(folder / f"reference_{method}.npy")
            same = [np.array_equal(ref, np.load(folder / f"{what}_{method}.npy", mmap_mode="r"))
                    for what in ("memory", "streamed")]
            for what, r in rows.items():
                print(f"{method:<11}{what:<11}{r['seconds']:>9.2f}{r['seconds'] / peer['seconds']:>9.1f}"
                      f"{r['peak_mb']:>9.0f}{int(r['n']):>9}")
            print(f"{'':<11}in memory == reference: {same[0]}; streamed == reference: {same[1]}; "
                  f"speed-up streamed vs reference: {rows['reference']['seconds'] / rows['streamed']['seconds']:.1f}x")


if __name__ == "__main__":
    main()
