"""Instance post-processing: time of each method vs SciPy connected components, and peak memory
of the streamed path vs the whole-volume path.

Data: a synthetic 64x512x512 class map of touching balls (about 1,500 nuclei, radius 5-9
pixels, two classes) and a centre map (a Gaussian bump per ball), stored as ``.npy`` files.

Peer: ``scipy.ndimage.label`` of the foreground (face connectivity), the least any instance
method has to do; every method is reported as a ratio to it.

Each measurement runs in a fresh process. ``whole`` loads both maps and calls
:func:`label_instances`; ``streamed`` memory-maps them and calls :func:`instances_from_maps`
(default memory budget) writing to a memory-mapped output, as ``segment`` does. Peak memory is
the process's maximum resident set size minus its size after imports; the whole-volume runs
include the arrays they load. The streamed result is checked to equal the whole-volume result.
Usage::

    python benchmarks/instances_bench.py            # 64x512x512
    python benchmarks/instances_bench.py --small    # 32x256x256
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

    base = _rss_mb()
    t0 = time.perf_counter()
    if what == "scipy":
        cls = np.load(folder / "cls.npy")
        _, n = ndi.label(cls > 0)
    elif what == "whole":
        cls, cen = np.load(folder / "cls.npy"), np.load(folder / "cen.npy")
        ids = label_instances(cls, cen, config=InstanceConfig(method=method))
        n = int(ids.max())
        np.save(folder / f"whole_{method}.npy", ids)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1], args.child[2])))
        return
    shape = (32, 256, 256) if args.small else (64, 512, 512)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_data(shape, folder)
        peer = run(folder, "scipy")
        print(f"volume {shape}; scipy.ndimage.label of the foreground: {peer['seconds']:.2f} s, "
              f"{int(peer['n'])} components")
        print(f"{'method':<11}{'path':<10}{'seconds':>9}{'x label':>9}{'peak MB':>9}{'objects':>9}")
        for method in ("components", "distance", "centers"):
            rows = {what: run(folder, what, method) for what in ("whole", "streamed")}
            same = np.array_equal(np.load(folder / f"whole_{method}.npy"),
                                  np.load(folder / f"streamed_{method}.npy", mmap_mode="r"))
            for what, r in rows.items():
                print(f"{method:<11}{what:<10}{r['seconds']:>9.2f}{r['seconds'] / peer['seconds']:>9.1f}"
                      f"{r['peak_mb']:>9.0f}{int(r['n']):>9}")
            print(f"{'':<11}streamed == whole: {same}; memory streamed / whole: "
                  f"{rows['streamed']['peak_mb'] / max(rows['whole']['peak_mb'], 1e-9):.2f}")


if __name__ == "__main__":
    main()
