"""One process vs a Dask LocalCluster (1 and 2 workers): many files, and one large volume.

Cases (issue 13): 8 volumes of ``--file-shape`` (default 32x256x256), and one volume of
``--size`` (default 128x1024x1024), segmented with the default 3D model (``--model``), with the
default instance step (``--instances auto``: object ids and table too, as ``pointseg segment``
writes them; ``--instances none`` for labels only).

Fair threading: the one-process run uses onnxruntime's default intra-op pool (all cores); a local
cluster of N worker processes gives each worker ``cores // N`` intra-op threads and one task at a
time, so no run has more compute threads than cores. Cluster start-up (seconds, printed apart) is
not included in the throughput; loading the model on each worker is.

Printed per case: seconds, throughput in Mvoxels/s, ratio to one process, and whether the labels
(and the instance ids) equal the one-process ones. Usage::

    python benchmarks/distributed_bench.py                        # full sizes (an hour or more on 2 cores)
    python benchmarks/distributed_bench.py --skip-files --size 128,1024,1024 --workers 1,2   # the volume case
    python benchmarks/distributed_bench.py --size 32,256,256 --file-shape 16,128,128 --files 4   # a quick check
    python benchmarks/distributed_bench.py --skip-volume          # many files only
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The same synthetic volume and size parser as the segment benchmark (run from this folder).
from segment_bench import _ints, make_volume  # noqa: E402


def _open(path: Path):
    """The array of a ``.tif`` (memory-mapped when possible) or an OME-Zarr store, unread."""
    import tifffile
    import zarr

    if path.suffix == ".zarr":
        return zarr.open_array(str(path / "0"), mode="r")
    try:
        return tifffile.memmap(path, mode="r")
    except ValueError:  # not memory-mappable (compressed): read it whole
        return tifffile.imread(path)


def _equal(a: Path, b: Path, step: int = 16) -> bool:
    """Whether two label or instance images are equal, compared ``step`` planes at a time."""
    x, y = _open(a), _open(b)
    if x.shape != y.shape:
        return False
    return all(np.array_equal(np.asarray(x[i : i + step]), np.asarray(y[i : i + step]))
               for i in range(0, x.shape[0], step))


def _row(name: str, seconds: float, voxels: int, base: float | None, same: str) -> None:
    thr = voxels / seconds / 1e6
    ratio = f"{base / seconds:5.2f}x" if base else "  1.00x"
    print(f"  {name:<26} {seconds:8.1f} s  {thr:7.3f} Mvox/s  {ratio}  same outputs: {same}", flush=True)


def run_case(title: str, inputs: list[Path], voxels: int, args: argparse.Namespace, work: Path) -> None:
    from distributed import LocalCluster

    from pointseg_cli.distributed import ClusterConfig, run_segment_distributed
    from pointseg_cli.distributed.cluster import available_cores
    from pointseg_cli.infer import SegmentConfig, run_segment

    config = SegmentConfig(instances=args.instances)
    print(f"{title}: {len(inputs)} input(s), {voxels / 1e6:.1f} Mvoxels, model {args.model}, "
          f"instances {args.instances}", flush=True)
    out1 = work / f"{title}-one"
    t = time.perf_counter()
    res = run_segment(inputs, config, out_dir=out1, model=args.model, device="cpu")
    base = time.perf_counter() - t
    if res.n_failed:
        raise SystemExit(f"one process failed: {res.failures[0].message}")
    ref = {f.path.stem: f.outputs for f in res.files}
    _row("one process", base, voxels, None, "-")
    cores = available_cores()
    for n in args.workers:
        threads = max(1, cores // n)
        t = time.perf_counter()
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                          silence_logs=logging.ERROR) as cluster:
            startup = time.perf_counter() - t
            out = work / f"{title}-dask{n}"
            t = time.perf_counter()
            dist = run_segment_distributed(
                inputs, config, out_dir=out, model=args.model, device="cpu",
                cluster=ClusterConfig(scheduler=cluster.scheduler_address, threads=threads),
            )
            seconds = time.perf_counter() - t
        if dist.n_failed:
            raise SystemExit(f"Dask run failed: {dist.failures[0].message}")
        same = all(_equal(f.outputs[k], ref[f.path.stem][k]) for f in dist.files
                   for k in ("labels", "instances") if k in f.outputs)
        _row(f"Dask {n} worker(s) x {threads} thr", seconds, voxels, base, str(same))
        print(f"  {'':<26} (cluster start-up {startup:.1f} s, not included)", flush=True)


def thread_ceiling(args: argparse.Namespace) -> None:
    """The model alone with 1 thread and with all cores: how much one process gains from its threads.

    A one-process run already spreads each tile over every core through onnxruntime's intra-op
    threads. If ``cores`` threads run the model ``s`` times faster than one, then ``cores``
    single-thread workers can be at most ``cores / s`` times faster than one process (minus their
    own overhead): that is the ceiling for the many-files case on this machine.
    """
    from pointseg_cli.distributed.cluster import available_cores
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.zoo import fetch

    cores = available_cores()
    path = Path(args.model) if Path(args.model).suffix == ".onnx" else Path(fetch(args.model))
    rates = {}
    for threads in sorted({1, cores}):
        pred = OrtPredictor(path, device="cpu", threads=threads)
        x = np.random.default_rng(0).random((1, pred.metadata.channels, *pred.metadata.tile), dtype=np.float32)
        pred.predict(x)  # warm-up
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            pred.predict(x)
            best = min(best, time.perf_counter() - t)
        rates[threads] = x[0, 0].size / best / 1e6
    speedup = rates[cores] / rates[1]
    print(f"model only ({path.name}, tile {pred.metadata.tile}, best of 5): 1 thread {rates[1]:.3f} Mvox/s, "
          f"{cores} threads {rates[cores]:.3f} Mvox/s ({speedup:.2f}x); so {cores} one-thread workers can reach "
          f"at most {cores / speedup:.2f}x one process", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="nuclei-3d")
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--file-shape", type=_ints, default=(32, 256, 256))
    ap.add_argument("--size", "--shape", dest="shape", type=_ints, default=(128, 1024, 1024),
                    help="Z,Y,X of the one large volume (default 128,1024,1024)")
    ap.add_argument("--instances", default="auto", choices=("auto", "centers", "distance", "components", "none"),
                    help="instance method of both runs (default auto, as pointseg segment)")
    ap.add_argument("--workers", type=_ints, default=(1, 2), help="local cluster sizes to try")
    ap.add_argument("--skip-files", action="store_true")
    ap.add_argument("--skip-volume", action="store_true")
    args = ap.parse_args()
    # the block mode logs its instance step (objects, seconds) on the client: show that line only
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    volume_log = logging.getLogger("pointseg_cli.distributed.volume")
    volume_log.setLevel(logging.INFO)
    volume_log.addHandler(handler)
    work = Path(tempfile.mkdtemp(prefix="pointseg-dask-bench-"))
    thread_ceiling(args)
    try:
        if not args.skip_files:
            (work / "files").mkdir()
            paths = []
            for i in range(args.files):
                paths.append(work / "files" / f"f{i}.tif")
                make_volume(paths[-1], args.file_shape, seed=i)
            run_case("files", paths, args.files * int(np.prod(args.file_shape)), args, work)
        if not args.skip_volume:
            (work / "volume").mkdir()
            make_volume(work / "volume" / "big.tif", args.shape)
            run_case("volume", [work / "volume" / "big.tif"], int(np.prod(args.shape)), args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
