"""Side-by-side benchmark: ``pointseg segment`` vs MONAI ``sliding_window_inference``.

Same network (the paper's 3D U-Net, ``pointseg_cli.nets.unet3d.UNet3D``, random weights), same
volume, tile, overlap (0.25) and gaussian blending (sigma = tile / 8). Two measurements:

* end to end, from the uint16 TIFF on disk to a uint8 labels TIFF on disk: ours is
  ``segment_file`` with the exported ONNX model in onnxruntime; the peer reads the TIFF with
  tifffile, normalises it the same way, runs ``sliding_window_inference`` with the PyTorch model,
  takes the argmax and writes the labels with tifffile;
* model only: one batch of tiles through onnxruntime (ours) and PyTorch (peer).

``--memory`` instead segments a large uint16 volume (default 2 GB, written with a tifffile
memmap) with the tiny embedded ``test-3d`` model in a child process and prints its peak RSS
(target < 1 GB); the peer is not run there (it would hold the whole volume as float32 plus
float32 logits for every class) and its need is only estimated.

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
    from pointseg_cli.infer.segment import SegmentOptions, segment_file
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
    print(f"volume {shape} uint16, tile {tile}, overlap {args.overlap}, gaussian, batch {args.batch_size}, "
          f"U-Net 4 levels x {args.filters} filters, ours {precision} ONNX vs MONAI torch "
          f"{'fp16 autocast' if device == 'cuda' else 'fp32'}")

    opts = SegmentOptions(tile=tile, overlap=args.overlap, blend="gaussian", batch_size=args.batch_size)

    def ours() -> None:
        segment_file(vol, tmp / "ours", pred, options=opts)

    def peer() -> None:
        data = tifffile.imread(vol)
        x = torch.from_numpy(normalize_image(data, norm))[None, None].to(torch_dev)
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.float16,
                                                    enabled=device == "cuda"):
            out = sliding_window_inference(x, roi_size=tile, sw_batch_size=args.batch_size, predictor=net,
                                           overlap=args.overlap, mode="gaussian", sigma_scale=0.125)
        labels = out[0].argmax(0).to(torch.uint8).cpu().numpy()
        tifffile.imwrite(tmp / "peer.labels.tif", labels)

    ours()  # warm-up (and a check that both run)
    peer()
    ours_labels = tifffile.imread(tmp / "ours" / "volume.labels.tif")
    agree = float(np.mean(ours_labels == tifffile.imread(tmp / "peer.labels.tif")))
    t_ours = _timeit(ours, args.repeats)
    t_peer = _timeit(peer, args.repeats)
    print(f"end to end (TIFF -> labels TIFF), best of {args.repeats}:")
    print(f"  ours  {t_ours:8.2f} s  {voxels / t_ours / 1e6:8.2f} Mvox/s")
    print(f"  MONAI {t_peer:8.2f} s  {voxels / t_peer / 1e6:8.2f} Mvox/s")
    print(f"  ratio ours/MONAI throughput: {t_peer / t_ours:.2f}x   (labels agree on {agree * 100:.2f}% of voxels)")

    batch = np.random.default_rng(1).random((args.batch_size, 1, *tile), dtype=np.float32)
    xb = torch.from_numpy(batch).to(torch_dev)

    def model_ours() -> None:
        pred.predict(batch)

    def model_peer() -> None:
        with torch.inference_mode(), torch.autocast(device_type=device, dtype=torch.float16,
                                                    enabled=device == "cuda"):
            net(xb)
        if device == "cuda":
            torch.cuda.synchronize()

    model_ours()
    model_peer()
    n = max(3, args.repeats)
    tile_vox = args.batch_size * int(np.prod(tile))
    m_ours = _timeit(model_ours, n)
    m_peer = _timeit(model_peer, n)
    print(f"model only ({args.batch_size} x {tile} per call, best of {n}):")
    print(f"  ours (onnxruntime {pred.provider})  {tile_vox / m_ours / 1e6:8.2f} Mvox/s")
    print(f"  peer (torch)                        {tile_vox / m_peer / 1e6:8.2f} Mvox/s")
    print(f"  ratio ours/peer: {m_peer / m_ours:.2f}x")
    shutil.rmtree(tmp, ignore_errors=True)


def run_memory(args: argparse.Namespace) -> None:
    n_vox = int(args.memory_gb * 1e9 / 2)
    side = 1024
    depth = max(1, n_vox // (side * side))
    shape = (depth, side, side)
    tmp = Path(tempfile.mkdtemp(prefix="pointseg-mem-"))
    vol = tmp / "big.tif"
    t = time.perf_counter()
    make_volume(vol, shape)
    print(f"wrote {shape} uint16 ({vol.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - t:.0f} s")
    cmd = [sys.executable, __file__, "--memory-child", str(vol), "--tile", ",".join(map(str, args.tile_memory)),
           "--batch-size", str(args.batch_size)]
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
    print(f"ours: segmented in {child['seconds']:.0f} s ({child['mvox_s']:.2f} Mvox/s, wall {wall:.0f} s), "
          f"tile {args.tile_memory}, model test-3d, peak RSS {peak_mb:.0f} MB (target < 1024 MB)")
    print(f"peer (MONAI, not run, estimate): volume uint16 + float32 copy + float32 logits for 2 classes + "
          f"float32 count map = {peer_gb:.1f} GB; ratio of peak memory peer/ours >= {peer_gb * 1e3 / peak_mb:.1f}x")
    shutil.rmtree(tmp, ignore_errors=True)


def memory_child(path: str, tile: tuple[int, ...], batch_size: int) -> None:
    from pointseg_cli.infer.predictors import OrtPredictor
    from pointseg_cli.infer.segment import SegmentOptions, segment_file
    from pointseg_cli.zoo import fetch

    pred = OrtPredictor(fetch("test-3d"), device="cpu")
    out = Path(path).parent / "out"
    res = segment_file(path, out, pred, options=SegmentOptions(tile=tile, batch_size=batch_size))
    hwm_kb = 0
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                hwm_kb = int(line.split()[1])
    if not hwm_kb:
        hwm_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": res.seconds, "mvox_s": res.voxels_per_second / 1e6, "vmhwm_mb": hwm_kb / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--shape", type=_ints, default=None, help="Z,Y,X (default 32,256,256 CPU; 64,1024,1024 cuda)")
    ap.add_argument("--tile", type=_ints, default=None, help="Z,Y,X (default 32,128,128 CPU; 32,256,256 cuda)")
    ap.add_argument("--filters", type=int, default=None, help="U-Net filters (default 16 CPU, 64 cuda)")
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=None, help="tiles per call (default 1 CPU, 4 cuda)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--memory", action="store_true", help="peak-RSS run on a large volume instead")
    ap.add_argument("--memory-gb", type=float, default=2.0)
    ap.add_argument("--tile-memory", type=_ints, default=(32, 128, 128))
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cuda = args.device == "cuda"
    args.shape = args.shape or ((64, 1024, 1024) if cuda else (32, 256, 256))
    args.tile = args.tile or ((32, 256, 256) if cuda else (32, 128, 128))
    args.filters = args.filters or (64 if cuda else 16)
    args.batch_size = args.batch_size or (4 if cuda else 1)
    if args.memory_child:
        memory_child(args.memory_child, args.tile or args.tile_memory, args.batch_size)
    elif args.memory:
        run_memory(args)
    else:
        run_side_by_side(args)


if __name__ == "__main__":
    main()
