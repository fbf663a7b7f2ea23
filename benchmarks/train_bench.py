"""Training speed: our full pipeline (crops, augmentation, objectness targets, the paper's losses,
prefetch thread) against a bare PyTorch loop doing the same forward/backward/Adam step on random
tensors of the same shape, in the same process. Target: ours >= 0.9x the bare loop's steps/s.

    python benchmarks/train_bench.py            # the CPU default configs (2D FPN, 3D U-Net) and a small one
    python benchmarks/train_bench.py --device cuda --full   # the GPU defaults (paper-sized batches)

Steps are timed between the monitor callbacks after a warm-up, so the one-off data preparation
(objectness) and the end-of-epoch validation/checkpoint are not counted: they are reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pointseg_cli.io.images import write_tiff
from pointseg_cli.io.points import PointTable, read_points_csv, write_points_csv
from pointseg_cli.model import build_model
from pointseg_cli.nets import forward_heads
from pointseg_cli.train.config import CPU_DEFAULTS, TrainConfig
from pointseg_cli.train.loop import train


def make_dataset(
    folder: Path, *, n_images: int, shape: tuple[int, ...], n_objects: int, radius: int, seed: int
) -> None:
    """Bright disks (2D) or balls (3D) on a dark noisy field: ``images/img<i>.tif`` and ``points.csv``."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    nd = len(shape)
    grids = np.ogrid[tuple(slice(0, s) for s in shape)]
    stems, coords = [], []
    for i in range(n_images):
        centres: list[np.ndarray] = []
        for _ in range(200):
            c = np.array([rng.integers(radius + 1, s - radius - 1) for s in shape])
            if all(np.abs(c - o).max() > 2 * radius + 2 for o in centres):
                centres.append(c)
            if len(centres) == n_objects:
                break
        inside = np.zeros(shape, bool)
        for c in centres:
            inside |= sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)) <= radius**2
        img = np.clip(np.where(inside, 180.0, 40.0) + rng.normal(0, 8, shape), 0, 255).astype(np.uint8)
        write_tiff(folder / "images" / f"img{i}.tif", img, axes="ZYX"[-nd:])
        stems += [f"img{i}"] * len(centres)
        coords += [[float(c[0]) if nd == 3 else np.nan, float(c[-2]), float(c[-1])] for c in centres]
    table = PointTable(image=np.array(stems), coords=np.array(coords), class_name=np.array(["cell"] * len(stems)),
                       class_names=("cell",))  # fmt: skip
    write_points_csv(folder / "points.csv", table)


def bare_steps_per_second(config: TrainConfig, *, steps: int, warmup: int, device: str) -> float:
    """Same network, batch shape, optimiser and device; inputs and targets are random tensors."""
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    bsz, k1 = int(config.batch_size or 1), len(config.classes) + 1
    x = torch.randn(bsz, config.channels, *config.crop, device=device)
    y = torch.randint(0, k1, (bsz, *config.crop), device=device)
    c = torch.rand(bsz, 1, *config.crop, device=device)
    use_amp = config.amp and device.startswith("cuda")
    for i in range(warmup + steps):
        if i == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", enabled=use_amp):
            heads = forward_heads(model, x)
        loss = F.cross_entropy(heads["logits"].float(), y)
        if "centers" in heads:  # the same centre head as ours, on a random target
            loss = loss + F.mse_loss(heads["centers"].float(), c)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def ours_steps_per_second(
    config: TrainConfig, data: Path, run: Path, *, steps: int, warmup: int
) -> tuple[float, float]:
    """Steps/s of :func:`train` (timed between step callbacks) and the one-off preparation time."""
    stamps: list[float] = []
    t0 = time.perf_counter()
    cfg = config.replace(epochs=1, steps_per_epoch=warmup + steps, max_steps=warmup + steps)

    def monitor(info) -> None:
        stamps.append(time.perf_counter())

    train(cfg, read_points_csv(data / "points.csv"), [data / "images"], run, monitor=monitor)
    prep = stamps[0] - t0  # includes the first step
    return steps / (stamps[-1] - stamps[warmup - 1]), prep


def component_times(config: TrainConfig, data: Path, *, steps: int) -> tuple[float, float, float]:
    """Mean seconds per step of: making a batch (on a prefetch thread, as in training, but waited
    for), our losses, and the network's forward/backward/Adam step (main thread), one after the
    other so that they do not overlap."""
    from pointseg_cli.train.data import prepare_data
    from pointseg_cli.train.losses import PointSupervisionLoss
    from pointseg_cli.train.sampler import CropSampler, Prefetcher

    prepared = prepare_data(config, read_points_csv(data / "points.csv"), [data / "images"])
    sampler = CropSampler(prepared.train, config, augment=True)
    loss_fn = PointSupervisionLoss(config)
    torch.manual_seed(0)
    model = build_model(config).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    t_batch = t_loss = t_net = 0.0

    def timed_batch(i: int) -> tuple[float, dict]:
        t = time.perf_counter()
        b = sampler.batch(i)
        return time.perf_counter() - t, b

    with Prefetcher(timed_batch, range(steps + 1), depth=1) as batches:
        made = [v for _, v in batches]
    for i in range(steps + 1):
        dt, batch = made[i]
        t1 = time.perf_counter()
        t0 = t1 - dt
        heads = forward_heads(model, batch["image"])
        t2 = time.perf_counter()
        out = loss_fn(heads["logits"], batch, heads.get("centers"))
        t3 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out.total.backward()
        opt.step()
        t4 = time.perf_counter()
        if i:  # skip the first (warm-up) step
            t_batch, t_loss, t_net = t_batch + t1 - t0, t_loss + t3 - t2, t_net + (t2 - t1) + (t4 - t3)
    return t_batch / steps, t_loss / steps, t_net / steps


def run_case(
    name: str, config: TrainConfig, shape: tuple[int, ...], *, steps: int, warmup: int, device: str, rounds: int
) -> float:
    """Alternate bare and ours ``rounds`` times (the machine is shared and noisy); compare medians."""
    bare, ours, prep = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        make_dataset(data, n_images=4, shape=shape, n_objects=12, radius=max(3, shape[-1] // 32), seed=1)
        for r in range(rounds):
            bare.append(bare_steps_per_second(config, steps=steps, warmup=warmup, device=device))
            sps, t = ours_steps_per_second(config, data, data / f"run{r}", steps=steps, warmup=warmup)
            ours.append(sps)
            prep.append(t)
        tb, tl, tn = component_times(config, data, steps=steps)
    b, o = statistics.median(bare), statistics.median(ours)
    paired = statistics.median(x / y for x, y in zip(ours, bare, strict=True))  # each round's ours / bare
    print(
        f"{name:<44} bare loop {b:7.3f} steps/s  ours {o:7.3f} steps/s  ratio {o / b:5.2f} "
        f"(median of per-round ratios {paired:.2f}; target >= 0.9)\n"
        f"{'':<44} rounds: bare {', '.join(f'{v:.3f}' for v in bare)}; ours {', '.join(f'{v:.3f}' for v in ours)}; "
        f"one-off prep {min(prep):.1f} s\n"
        f"{'':<44} per step: batch {tb * 1e3:.1f} ms (prefetch thread), losses {tl * 1e3:.1f} ms, "
        f"network fwd+bwd+step {tn * 1e3:.1f} ms -> (batch+losses)/network = {(tb + tl) / tn:.3f}"
    )
    return o / b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="alternating bare/ours rounds (medians compared)")
    ap.add_argument("--full", action="store_true", help="GPU defaults: ResNet-50 FPN 64x128^2, U-Net 20x32x64^2")
    ap.add_argument("--case", default="all", help="2d, 3d, small or all (without --full)")
    args = ap.parse_args()
    common = dict(classes=("cell",), device=args.device, val_fraction=0.0, seed=0)
    if args.full:
        cases = [
            ("2D default (GPU): FPN-ResNet50, 64 x 128x128", TrainConfig(**common), (512, 512)),
            ("3D default (GPU): U-Net 64, 20 x 32x64x64", TrainConfig(arch="unet3d", ndim=3, **common),
             (64, 128, 128)),
        ]
    else:
        cases = [
            ("2d", "2D default (CPU): FPN-ResNet18/32, 8 x 128x128", TrainConfig(**CPU_DEFAULTS[2], **common),
             (256, 256)),
            ("3d", "3D default (CPU): U-Net 16, 2 x 32x64x64",
             TrainConfig(arch="unet3d", ndim=3, **CPU_DEFAULTS[3], **common), (48, 128, 128)),
            ("small", "2D FPN-ResNet18/16, 8 x 64x64",
             TrainConfig(encoder="resnet18", base_filters=16, crop=(64, 64), batch_size=8, **common), (256, 256)),
        ]
        cases = [c[1:] for c in cases if args.case in ("all", c[0])]  # fmt: skip
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    for name, cfg, shape in cases:
        run_case(name, cfg, shape, steps=args.steps, warmup=args.warmup, device=args.device, rounds=args.rounds)


if __name__ == "__main__":
    main()
