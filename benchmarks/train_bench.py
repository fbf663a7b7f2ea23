"""Training speed: our full pipeline (crops, augmentation, objectness targets, the paper's losses,
prefetch thread) against a bare PyTorch loop doing the same forward/backward/Adam step on random
tensors of the same shape, in the same process. Target: ours >= 0.85x the bare loop's steps/s.

    python benchmarks/train_bench.py            # small CPU configs (2D FPN and 3D U-Net)
    python benchmarks/train_bench.py --device cuda --full   # paper-sized batches on a GPU

Steps are timed between the monitor callbacks after a warm-up, so the one-off data preparation
(objectness) and the end-of-epoch validation/checkpoint are not counted: they are reported apart.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointseg_cli.io.points import read_points_csv  # noqa: E402
from pointseg_cli.model import build_model  # noqa: E402
from pointseg_cli.train.config import TrainConfig  # noqa: E402
from pointseg_cli.train.loop import train  # noqa: E402
from tests.train.synthetic import make_dataset  # noqa: E402


def bare_steps_per_second(config: TrainConfig, *, steps: int, warmup: int, device: str) -> float:
    """Same network, batch shape, optimiser and device; inputs and targets are random tensors."""
    torch.manual_seed(0)
    model = build_model(config).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    bsz, k1 = int(config.batch_size or 1), len(config.classes) + 1
    x = torch.randn(bsz, config.channels, *config.crop, device=device)
    y = torch.randint(0, k1, (bsz, *config.crop), device=device)
    use_amp = config.amp and device.startswith("cuda")
    for i in range(warmup + steps):
        if i == warmup:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast("cuda", enabled=use_amp):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
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
        logits = model(batch["image"])
        t2 = time.perf_counter()
        out = loss_fn(logits, batch)
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
    print(
        f"{name:<44} bare loop {b:7.3f} steps/s  ours {o:7.3f} steps/s  ratio {o / b:5.2f}  (target >= 0.85)\n"
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
    ap.add_argument("--full", action="store_true", help="paper sizes: ResNet-50 FPN 64x128^2, U-Net 20x32x64^2")
    args = ap.parse_args()
    common = dict(classes=("cell",), device=args.device, val_fraction=0.0, seed=0)
    if args.full:
        cases = [
            ("2D FPN-ResNet50, 64 x 128x128", TrainConfig(encoder="resnet50", **common), (512, 512)),
            ("3D U-Net 64 filters, 20 x 32x64x64", TrainConfig(arch="unet3d", ndim=3, **common), (64, 128, 128)),
        ]
    else:
        cases = [
            ("2D FPN-ResNet18/16, 8 x 64x64",
             TrainConfig(encoder="resnet18", base_filters=16, crop=(64, 64), batch_size=8, **common), (256, 256)),
            ("2D FPN-ResNet18/64, 8 x 128x128 (real run)",
             TrainConfig(encoder="resnet18", crop=(128, 128), batch_size=8, **common), (256, 256)),
            ("3D U-Net 8 filters, 2 x 16x32x32",
             TrainConfig(arch="unet3d", ndim=3, base_filters=8, crop=(16, 32, 32), batch_size=2, **common),
             (32, 96, 96)),
        ]  # fmt: skip
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads")
    for name, cfg, shape in cases:
        run_case(name, cfg, shape, steps=args.steps, warmup=args.warmup, device=args.device, rounds=args.rounds)


if __name__ == "__main__":
    main()
