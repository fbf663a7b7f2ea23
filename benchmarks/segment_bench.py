"""Side-by-side benchmark: ``pointseg segment`` vs MONAI ``sliding_window_inference``.

Same network (the paper's 3D U-Net, ``pointseg_cli.nets.unet3d.UNet3D``, random weights, its
training tile ``--tile``), same volume, overlap (segment's default unless ``--overlap``) and
gaussian blending (sigma = tile / 8). Measurements:

* end to end, from the uint16 TIFF on disk to a uint8 labels TIFF on disk: ours is
  ``segment_file`` with the exported ONNX model in onnxruntime and segment's defaults (the
  model's tile grown to compute fewer overlapping voxels); the peer reads the TIFF with tifffile,
  normalises it the same way, runs ``sliding_window_inference`` with the PyTorch model, takes
  the argmax and writes the labels with tifffile, once with the model's tile as ``roi_size`` and
  once with the tile ours chose;
* model only: one batch of tiles through onnxruntime (ours) and PyTorch (peer), on the model's
  tile and on ours', and end to end as a fraction of the faster of the two; every result's label
  agreement with one whole-volume pass of the network;
* the default ``nuclei-3d`` model end to end on a 64x512x512 volume: onnxruntime's default session
  options, overlap 0.25 and the model's tile (before), our session options and default overlap
  with the model's tile (``--tile``), and today's defaults (after).

``--border-study`` compares tiled labels at several overlaps with one tile covering the whole
volume (how far tile-border effects reach); ``--session-options`` compares model-only throughput
with onnxruntime's default session options and ours.

``--memory`` instead segments a large uint16 volume (default 2 GB, written with a tifffile
memmap) with the tiny embedded ``test-3d`` model in a child process, with instances on
(``--memory-instances``, default ``auto``: ``distance`` for this model, which has no centre
output; ``centers`` adds a stand-in centre output), and prints its peak RSS (target < 1.5 GB with
instances, < 1 GB without); the peer is not run there (it would hold the whole volume as float32
plus float32 logits for every class) and its need is only estimated. The volume is dark balls
with soft edges (radius 5-9 voxels, about one per 20,000 voxels) on a bright background with
noise, which the untrained ``test-3d`` labels as objects (``--memory-volume waves`` gives the
smooth pattern of the other runs, which it labels as one volume-filling object plus millions of
noise specks: a worst case for the instance step's per-object tables, about 0.4 kB per object). ``nuclei-3d``
would take most of an hour on 2 GB with 2 CPU cores, hence the tiny model.

Run (CPU, this machine)::

    python benchmarks/segment_bench.py
    python benchmarks/segment_bench.py --memory

GPU machine: ``python benchmarks/segment_bench.py --device cuda`` (64x1024x1024, 64 filters,
ours in fp16 ONNX with the CUDA provider, MONAI with fp16 autocast). Needs ``pip install monai``
(benchmark only; ``pip install --no-deps monai`` keeps the installed torch).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def make_volume(path: Path, shape: tuple[int, ...], *, seed: int = 0) -> None:
    """A uint16 volume of blurred blobs plus noise, written plane block by plane block (memmap)."""
    import tifffile

    rng = np.random.default_rng(seed)
    mm = tifffile.memmap(path, shape=shape, dtype=np.uint16)
    yy, xx = np.mgrid[0 : shape[1], 0 : shape[2]]
    base = (np.sin(yy / 9.0) * np.cos(xx / 7.0) * 800 + 1000).astype(np.float32)
    step = 16
    for z in range(0, shape[0], step):
        n = min(step, shape[0] - z)
        noise = rng.normal(0, 100, size=(n, *shape[1:])).astype(np.float32)
        mm[z : z + n] = np.clip(base[None] * (1 + 0.3 * np.sin(z / 5.0)) + noise, 0, 65535).astype(np.uint16)
    mm.flush()
    del mm


def make_blob_volume(path: Path, shape: tuple[int, ...], *, seed: int = 0) -> None:
    """A uint16 volume of dark balls with soft edges on a bright, noisy background, written plane block by block."""
    import tifffile

    rng = np.random.default_rng(seed)
    n = int(np.prod(shape) / 20_000)
    radii = rng.uniform(5, 9, n)
    centres = rng.uniform(0, 1, (n, 3)) * np.asarray(shape)
    reach = 1.5 * radii  # darkness clip(1.5 - d / r, 0, 1) fades out at 1.5 radii
    order = np.argsort(centres[:, 0] - reach)
    centres, radii, reach = centres[order], radii[order], reach[order]
    mm = tifffile.memmap(path, shape=shape, dtype=np.uint16)
    step = 16
    for z in range(0, shape[0], step):
        z1 = min(z + step, shape[0])
        dark = np.zeros((z1 - z, *shape[1:]), np.float32)
        k = int(np.searchsorted(centres[:, 0] - reach, z1))
        for i in np.flatnonzero(centres[:k, 0] + reach[:k] >= z):
            c, r = centres[i], reach[i]
            lo = np.maximum(np.floor(c - r).astype(int), (z, 0, 0))
            hi = np.minimum(np.ceil(c + r).astype(int) + 1, (z1, *shape[1:]))
            if np.all(hi > lo):
                grid = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
                d = np.sqrt(sum((g - ci) ** 2 for g, ci in zip(grid, c, strict=True))) / radii[i]
                box = (slice(lo[0] - z, hi[0] - z), *(slice(a, b) for a, b in zip(lo[1:], hi[1:], strict=True)))
                np.maximum(dark[box], np.clip(1.5 - d, 0, 1), out=dark[box])
        block = 2000 - 1400 * dark + rng.normal(0, 40, size=dark.shape).astype(np.float32)
        mm[z:z1] = np.clip(block, 0, 65535).astype(np.uint16)
    mm.flush()
    del mm


def _timeit(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_side_by_side(args: argparse.Namespace) -> None:
    import tifffile
    import torch
    from monai.inferers import sliding_window_inference

    from pointseg_cli.export.onnx import export_module
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, _batch_for, _grid_for, segment_file
    from pointseg_cli.model.metadata import ModelMetadata
    from pointseg_cli.nets.unet3d import UNet3D
    from pointseg_cli.preprocess.normalize import Normalization, normalize_image

    device = args.device
    shape, tile = args.shape, args.tile
    torch.manual_seed(0)
    net = UNet3D(1, 2, base_filters=args.filters).eval()
    norm = Normalization()
    meta = ModelMetadata(classes=("object",), ndim=3, channels=1, normalization=norm.to_dict(), tile=tile, divisor=8)
    tmp = Path(tempfile.mkdtemp(prefix="pointseg-bench-"))
    vol = tmp / "volume.tif"
    make_volume(vol, shape)
    precision = "fp16" if device == "cuda" else "fp32"
    onnx_path = export_module(net, meta, tmp / "unet.onnx", precision=precision,
                              tolerance=5e-2 if precision == "fp16" else None).path
    pred = OrtPredictor(onnx_path, device=device)
    torch_dev = torch.device(device)
    net = net.to(torch_dev)
    voxels = int(np.prod(shape))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared, noisy); "
          f"device {device}; ours runs on {pred.provider}")
    print(f"volume {shape} uint16, model tile {tile}, overlap {args.overlap}, gaussian, batch {args.batch_size}, "
          f"U-Net 4 levels x {args.filters} filters, ours {precision} ONNX vs MONAI torch "
          f"{'fp16 autocast' if device == 'cuda' else 'fp32'}")

    opts = SegmentOptions(overlap=args.overlap, blend="gaussian", batch_size=args.batch_size)
    grid = _grid_for(shape, pred, opts)
    ours_tile = tuple(grid.tile)
    print(f"ours: segment's defaults: tile {ours_tile} (the model's {tile} grown), {grid.n_tiles} tiles, "
          f"{grid.n_tiles * int(np.prod(ours_tile)) / np.prod(shape):.2f}x the voxels computed; "
          f"batch {_batch_for(grid, pred, opts)}")

    def ours() -> None:
        segment_file(vol, tmp / "ours", pred, options=opts)

    def peer(roi: tuple[int, ...], name: str) -> None:
        data = tifffile.imread(vol)
        x = torch.from_numpy(normalize_image(data, norm))[None, None].to(torch_dev)
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.float16,
                                                    enabled=device == "cuda"):
            out = sliding_window_inference(x, roi_size=roi, sw_batch_size=args.batch_size, predictor=net,
                                           overlap=args.overlap, mode="gaussian", sigma_scale=0.125)
        labels = out[0].argmax(0).to(torch.uint8).cpu().numpy()
        tifffile.imwrite(tmp / f"{name}.labels.tif", labels)

    peers = {"MONAI, the model's tile": (tile, "peer"), "MONAI, ours' tile": (ours_tile, "peer_same")}
    if ours_tile == tuple(tile):
        del peers["MONAI, ours' tile"]
    ours()  # warm-up (and a check that every run works)
    for roi, name in peers.values():
        peer(roi, name)
    ours_labels = tifffile.imread(tmp / "ours" / "volume.labels.tif")
    with torch.inference_mode():  # the agreement check: one pass over the whole volume, no tiles
        x = torch.from_numpy(normalize_image(tifffile.imread(vol), norm))[None, None].to(torch_dev)
        whole = net(x)[0].argmax(0).to(torch.uint8).cpu().numpy()
    runs = {"ours": ours} | {k: (lambda r=r, n=n: peer(r, n)) for k, (r, n) in peers.items()}
    if device == "cuda":  # what blending on the GPU buys: the same run with every tile's logits copied to the host
        from pointseg_cli.infer import stream

        def ours_host_blend() -> None:
            auto = stream.torch_device_for
            stream.torch_device_for = lambda predictor: None
            try:
                segment_file(vol, tmp / "ours_host", pred, options=opts)
            finally:
                stream.torch_device_for = auto

        runs["ours, blended on the host"] = ours_host_blend
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):  # interleaved, so that load changes hit all alike
        for k, fn in runs.items():
            best[k] = min(best[k], _timeit(fn, 1))
    print(f"end to end (TIFF -> labels TIFF), best of {args.repeats}, load average {os.getloadavg()[0]:.1f}:")
    for k, sec in best.items():
        labels = (ours_labels if k == "ours" else tifffile.imread(tmp / "ours_host" / "volume.labels.tif")
                  if k.startswith("ours") else tifffile.imread(tmp / f"{peers[k][1]}.labels.tif"))
        print(f"  {k:<24} {sec:8.2f} s {voxels / sec / 1e6:8.2f} Mvox/s   labels agree with one whole-volume "
              f"pass on {np.mean(labels == whole) * 100:.3f}% of voxels")
    for k in peers:
        print(f"  ratio ours / {k}: {best[k] / best['ours']:.2f}x")
    if "ours, blended on the host" in best:
        print(f"  blending on the GPU vs on the host: {best['ours, blended on the host'] / best['ours']:.2f}x")
    t_ours = best["ours"]
    t_peer = best["MONAI, the model's tile"]

    model = {}
    for name, t in {"the model's tile": tuple(tile), "ours' tile": ours_tile}.items():
        batch = np.random.default_rng(1).random((args.batch_size, 1, *t), dtype=np.float32)
        xb = torch.from_numpy(batch).to(torch_dev)

        def model_ours(batch: np.ndarray = batch) -> None:
            pred.predict(batch)

        def model_peer(xb: torch.Tensor = xb) -> None:
            with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.float16,
                                                        enabled=device == "cuda"):
                net(xb)
            if device == "cuda":
                torch.cuda.synchronize()

        model_ours()
        model_peer()
        n = max(3, args.repeats)
        tile_vox = args.batch_size * int(np.prod(t))
        model[name] = (tile_vox / _timeit(model_ours, n), tile_vox / _timeit(model_peer, n))
        print(f"model only, {args.batch_size} x {t} per call ({name}), best of {n}: ours (onnxruntime "
              f"{pred.provider}) {model[name][0] / 1e6:.2f} Mvox/s, peer (torch) {model[name][1] / 1e6:.2f} Mvox/s, "
              f"ratio {model[name][0] / model[name][1]:.2f}x")
        if t == ours_tile:
            break
    m_ours = max(v[0] for v in model.values())
    m_peer = max(v[1] for v in model.values())
    print(f"end to end as a fraction of model-only throughput (the faster tile): "
          f"ours {(voxels / t_ours) / m_ours:.2f}, MONAI with the model's tile {(voxels / t_peer) / m_peer:.2f}")
    shutil.rmtree(tmp, ignore_errors=True)
    if device == "cpu" and args.default_shape:
        run_default_model(args)


def run_default_model(args: argparse.Namespace) -> None:
    """The default ``nuclei-3d`` end to end: onnxruntime default options and overlap 0.25 vs today's defaults."""
    import onnxruntime as ort

    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, segment_file
    from pointseg_cli.zoo import fetch

    tmp = Path(tempfile.mkdtemp(prefix="pointseg-default-"))
    vol = tmp / "volume.tif"
    make_volume(vol, args.default_shape)
    path = fetch("nuclei-3d")
    before = OrtPredictor(path, device="cpu")
    plain = ort.SessionOptions()
    plain.log_severity_level = 3
    before.session = ort.InferenceSession(str(path), sess_options=plain, providers=["CPUExecutionProvider"])
    after = OrtPredictor(path, device="cpu")
    tile = tuple(after.metadata.tile)
    runs = {"before: onnxruntime default options, overlap 0.25": (before, SegmentOptions(tile=tile, overlap=0.25)),
            f"ours, the model's tile {tile}, overlap {SegmentOptions().overlap}": (after, SegmentOptions(tile=tile)),
            "after: segment's defaults (tile grown)": (after, SegmentOptions())}
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):  # interleaved, so that load changes hit both alike
        for k, (pred, opts) in runs.items():
            best[k] = min(best[k], segment_file(vol, tmp / "out", pred, options=opts).seconds)
            shutil.rmtree(tmp / "out")
    voxels = int(np.prod(args.default_shape))
    print(f"default model nuclei-3d, {args.default_shape} uint16 TIFF -> labels TIFF, best of {args.repeats}, "
          f"load average {os.getloadavg()[0]:.1f}:")
    for k, sec in best.items():
        print(f"  {k:<52} {sec:7.2f} s {voxels / sec / 1e6:7.2f} Mvox/s")
    b, m, a = best.values()
    print(f"  ratio after/before throughput: {b / a:.2f}x (the model's tile: {b / m:.2f}x)")
    shutil.rmtree(tmp, ignore_errors=True)


def _bench_unet(tmp: Path, tile: tuple[int, ...], filters: int, *, precision: str = "fp32") -> Path:
    """The benchmark's U-Net (random weights, seed 0) exported to ONNX; returns the path."""
    import torch

    from pointseg_cli.export.onnx import export_module
    from pointseg_cli.model.metadata import ModelMetadata
    from pointseg_cli.nets.unet3d import UNet3D
    from pointseg_cli.preprocess.normalize import Normalization

    torch.manual_seed(0)
    net = UNet3D(1, 2, base_filters=filters).eval()
    meta = ModelMetadata(classes=("object",), ndim=3, channels=1, normalization=Normalization().to_dict(),
                         tile=tile, divisor=8)
    return export_module(net, meta, tmp / "unet.onnx", precision=precision,
                         tolerance=5e-2 if precision == "fp16" else None).path


def _study_networks(args: argparse.Namespace, tmp: Path) -> list[tuple[str, Path, np.ndarray]]:
    """(name, onnx path, volume) for the default ``nuclei-3d`` model and the benchmark U-Net."""
    import tifffile

    from pointseg_cli.demo.nuclei3d import make_nuclei_volume
    from pointseg_cli.zoo import fetch

    nuclei = make_nuclei_volume(args.study_shape, seed=12).image
    vol = tmp / "bench.tif"
    make_volume(vol, args.study_shape_unet)
    return [("nuclei-3d", Path(fetch("nuclei-3d")), nuclei),
            (f"U-Net {args.filters} filters (benchmark)", _bench_unet(tmp, args.tile, args.filters),
             tifffile.imread(vol))]


def _seam_distance(grid, shape: tuple[int, ...]) -> np.ndarray:
    """Per voxel, the distance to the nearest tile edge that lies inside the volume (inf: none)."""
    dist = np.full(shape, np.inf, dtype=np.float32)
    for a, (starts, t, n) in enumerate(zip(grid.starts, grid.tile, shape, strict=True)):
        edges = sorted({s for s in starts if 0 < s < n} | {s + t for s in starts if 0 < s + t < n})
        if not edges:
            continue
        c = np.arange(n)[:, None] + 0.5
        d = np.min(np.abs(c - np.asarray(edges)[None]), axis=1) - 0.5
        dist = np.minimum(dist, d.reshape([n if i == a else 1 for i in range(len(shape))]))
    return dist


def run_border_study(args: argparse.Namespace) -> None:
    """How far tile-border effects reach: tiled labels vs one tile covering the whole volume."""
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, _grid_for, segment_array

    tmp = Path(tempfile.mkdtemp(prefix="pointseg-border-"))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared, noisy)")
    print("reference: one tile covering the whole volume. tile 'model': the model's tile; 'default': segment's "
          "default (the model's tile grown, same overlap in voxels). trim 'auto' = a quarter of the real overlap "
          "(the default). overlap: requested; real: smallest real overlap in voxels per axis (tile starts on "
          "multiples of the size divisor). agree: labels; balanced: labels thresholded at the reference's median "
          "class-1 margin (half the voxels foreground: sensitive even for an untrained net). reach: largest "
          "distance of a differing voxel from the nearest inner tile edge")
    for name, path, image in _study_networks(args, tmp):
        pred = OrtPredictor(path, device="cpu")
        tile = tuple(pred.metadata.tile) if name == "nuclei-3d" else tuple(args.tile)
        whole = segment_array(image, pred, options=SegmentOptions(tile=image.shape, overlap=0.0), return_logits=True)
        margin = whole.logits[1] - whole.logits[0]
        thr = float(np.median(margin))
        print(f"\n{name}: volume {image.shape}, model tile {tile}, {pred.metadata.precision}; foreground in the "
              f"reference {np.mean(whole.labels > 0) * 100:.1f}% of voxels")
        print(f"  {'overlap':>8} {'tile':>8} {'trim':>5} {'real':>12} {'tiles':>6} {'computed':>9} {'agree %':>9} "
              f"{'balanced %':>11} {'reach':>6} {'seconds':>8}")
        for overlap in args.overlaps:
            for which in ("model", "default"):
                for trim in args.trims:
                    opts = SegmentOptions(tile=tile if which == "model" else None, overlap=overlap, edge_trim=trim)
                    grid = _grid_for(image.shape, pred, opts)
                    t = time.perf_counter()
                    res = segment_array(image, pred, options=opts, return_logits=True)
                    sec = time.perf_counter() - t
                    real = ",".join(str(grid.min_overlap(a)) for a in range(grid.ndim))
                    ratio = grid.n_tiles * int(np.prod(grid.tile)) / image.size
                    diff = res.labels != whole.labels
                    balanced = np.mean(((res.logits[1] - res.logits[0]) > thr) == (margin > thr)) * 100
                    reach = _seam_distance(grid, image.shape)[diff].max() if diff.any() else 0
                    shown = which if which == "model" else "x".join(map(str, grid.tile))
                    print(f"  {overlap:>8.4g} {shown:>8} {'auto' if trim is None else trim:>5} {real:>12} "
                          f"{grid.n_tiles:>6} {ratio:>8.2f}x {100 - diff.mean() * 100:>9.3f} {balanced:>11.3f} "
                          f"{reach:>6.0f} {sec:>8.1f}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


def run_session_options(args: argparse.Namespace) -> None:
    """Model-only throughput with onnxruntime's default session options vs ours, interleaved."""
    import onnxruntime as ort

    from pointseg_cli.infer.predictors import physical_cores, session_options
    from pointseg_cli.model.metadata import read_model_metadata

    tmp = Path(tempfile.mkdtemp(prefix="pointseg-ort-"))
    print(f"machine: {os.cpu_count()} CPUs ({physical_cores()} physical usable), load average "
          f"{os.getloadavg()[0]:.1f} (shared, noisy); onnxruntime {ort.__version__}")
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    for name, path, _ in _study_networks(args, tmp):
        meta = read_model_metadata(path)
        tile = tuple(meta.tile) if name == "nuclei-3d" else tuple(args.tile)
        dtype = np.float16 if meta.precision == "fp16" else np.float32
        x = np.random.default_rng(1).random((args.batch_size, 1, *tile)).astype(dtype)
        sessions = {"onnxruntime defaults": ort.InferenceSession(str(path), sess_options=quiet,
                                                                 providers=["CPUExecutionProvider"]),
                    "pointseg session_options": ort.InferenceSession(str(path), sess_options=session_options(ort),
                                                                     providers=["CPUExecutionProvider"])}
        feeds = {s: {s_.get_inputs()[0].name: x} for s, s_ in sessions.items()}
        best = dict.fromkeys(sessions, float("inf"))
        for s, sess in sessions.items():
            sess.run(None, feeds[s])
        for _ in range(max(3, args.repeats)):  # interleaved, so that load changes hit both alike
            for s, sess in sessions.items():
                t = time.perf_counter()
                sess.run(None, feeds[s])
                best[s] = min(best[s], time.perf_counter() - t)
        vox = args.batch_size * int(np.prod(tile))
        print(f"{name}: {args.batch_size} x {tile} per call, best of {max(3, args.repeats)}")
        for s, b in best.items():
            print(f"  {s:<26} {vox / b / 1e6:8.2f} Mvox/s")
        a, b = best.values()
        print(f"  ratio ours/defaults: {a / b:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


def run_memory(args: argparse.Namespace) -> None:
    n_vox = int(args.memory_gb * 1e9 / 2)
    side = 1024
    depth = max(1, n_vox // (side * side))
    shape = (depth, side, side)
    tmp = Path(tempfile.mkdtemp(prefix="pointseg-mem-"))
    vol = tmp / "big.tif"
    t = time.perf_counter()
    (make_blob_volume if args.memory_volume == "blobs" else make_volume)(vol, shape)
    print(f"wrote {shape} uint16 ({vol.stat().st_size / 1e9:.2f} GB, {args.memory_volume}) in "
          f"{time.perf_counter() - t:.0f} s")
    tile_arg = "default" if args.tile_memory is None else ",".join(map(str, args.tile_memory))
    cmd = [sys.executable, __file__, "--memory-child", str(vol), "--tile-memory", tile_arg,
           "--batch-size", str(args.batch_size), "--memory-instances", args.memory_instances]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if res.returncode != 0:
        print(res.stdout, res.stderr)
        raise SystemExit(res.returncode)
    child = json.loads(res.stdout.strip().splitlines()[-1])
    # The child's own high-water mark (VmHWM). RUSAGE_CHILDREN would be wrong here: Linux carries the
    # parent's peak (it just wrote the volume through a memmap) into a vfork+exec'd child's maxrss.
    peak_mb = child["vmhwm_mb"]
    peer_gb = int(np.prod(shape)) * (2 + 4 + 4 * 2 + 4) / 1e9
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared, noisy)")
    target = 1024 if args.memory_instances == "none" else 1536
    print(f"ours: segmented in {child['seconds']:.0f} s ({child['mvox_s']:.2f} Mvox/s, wall {wall:.0f} s), "
          f"tile {tuple(child['tile'])} ({tile_arg}), model test-3d, instances {child['method']} "
          f"({child['objects']} objects), peak RSS {peak_mb:.0f} MB (target < {target} MB)")
    print(f"peer (MONAI, not run, estimate): volume uint16 + float32 copy + float32 logits for 2 classes + "
          f"float32 count map = {peer_gb:.1f} GB; ratio of peak memory peer/ours >= {peer_gb * 1e3 / peak_mb:.1f}x")
    shutil.rmtree(tmp, ignore_errors=True)


def memory_child(path: str, tile: tuple[int, ...] | None, batch_size: int, instances: str) -> None:
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, _grid_for, segment_file
    from pointseg_cli.io.images import open_image
    from pointseg_cli.zoo import fetch

    pred = OrtPredictor(fetch("test-3d"), device="cpu")
    if instances == "centers" and not pred.metadata.has_centers:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from instances_bench import SyntheticCentres

        pred = SyntheticCentres(pred)
    out = Path(path).parent / "out"
    opts = SegmentOptions(tile=tile, batch_size=batch_size, instances=instances)
    grid = _grid_for(tuple(open_image(path).info.spatial_shape), pred, opts)
    res = segment_file(path, out, pred, options=opts)
    hwm_kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    if not hwm_kb:
        hwm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": res.seconds, "mvox_s": res.voxels_per_second / 1e6, "vmhwm_mb": hwm_kb / 1024,
                      "tile": list(grid.tile), "method": res.instance_method or "none", "objects": res.n_objects or 0}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--shape", type=_ints, default=None, help="Z,Y,X (default 32,256,256 CPU; 64,1024,1024 cuda)")
    ap.add_argument("--tile", type=_ints, default=None, help="Z,Y,X (default 32,128,128 CPU; 32,256,256 cuda)")
    ap.add_argument("--filters", type=int, default=None, help="U-Net filters (default 16 CPU, 64 cuda)")
    ap.add_argument("--overlap", type=float, default=None, help="default: segment's default overlap")
    ap.add_argument("--default-shape", type=_ints, default=(64, 512, 512),
                    help="volume of the default-model before/after run (CPU; 0 skips it)")
    ap.add_argument("--batch-size", type=int, default=None, help="tiles per call (default 1 CPU, 4 cuda)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="peak-RSS run on a large volume instead")
    ap.add_argument("--memory-gb", type=float, default=2.0)
    ap.add_argument("--tile-memory", type=lambda t: None if t == "default" else _ints(t), default=(32, 128, 128),
                    help="tile of the --memory run ('default': segment's default, the model's tile grown)")
    ap.add_argument("--memory-instances", choices=("none", "auto", "distance", "components", "centers"),
                    default="auto", help="instances in the --memory run (auto: distance for test-3d)")
    ap.add_argument("--memory-volume", choices=("blobs", "waves"), default="blobs",
                    help="--memory volume: dark balls (objects for test-3d) or the smooth pattern")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--border-study", action="store_true",
                    help="labels of tiled vs one-tile whole-volume inference per overlap and trim")
    ap.add_argument("--session-options", action="store_true",
                    help="model-only throughput, onnxruntime default session options vs ours")
    ap.add_argument("--study-shape", type=_ints, default=(64, 320, 320),
                    help="synthetic nuclei volume for nuclei-3d in those two modes")
    ap.add_argument("--study-shape-unet", type=_ints, default=(64, 256, 256),
                    help="benchmark volume for the U-Net in those two modes")
    ap.add_argument("--overlaps", type=lambda t: tuple(float(v) for v in t.split(",")),
                    default=(0.25, 0.125, 0.0))
    ap.add_argument("--trims", type=lambda t: tuple(None if v == "auto" else int(v) for v in t.split(",")),
                    default=(None,), help="edge trims to try, e.g. auto,0,4 (auto = a quarter of the overlap)")
    args = ap.parse_args()
    cuda = args.device == "cuda"
    args.shape = args.shape or ((64, 1024, 1024) if cuda else (32, 256, 256))
    args.tile = args.tile or ((32, 256, 256) if cuda else (32, 128, 128))
    args.filters = args.filters or (64 if cuda else 16)
    args.batch_size = args.batch_size or (4 if cuda else 1)
    if args.overlap is None:
        from pointseg_cli.infer.segment import SegmentOptions

        args.overlap = SegmentOptions().overlap
    if args.default_shape == (0,):
        args.default_shape = None
    if args.memory_child:
        memory_child(args.memory_child, args.tile_memory, args.batch_size, args.memory_instances)
    elif args.memory:
        run_memory(args)
    elif args.border_study:
        run_border_study(args)
    elif args.session_options:
        run_session_options(args)
    else:
        run_side_by_side(args)


if __name__ == "__main__":
    main()
