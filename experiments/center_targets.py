"""Compare centre-map target designs on synthetic touching 3D nuclei (docs/training.md, "Centre head").

Small-budget driver: writes a few ``3d-nuclei`` demo volumes, simulates one jittered click per
nucleus, trains a small 3D U-Net per variant for the same number of steps, predicts the held-out
volumes whole and scores instances (F1 at IoU 0.5) from

* connected components of the predicted foreground,
* a distance-transform watershed of the predicted foreground,
* the centre map: peaks (``peak_local_max``) inside the foreground as markers, then a seeded
  watershed of the inverted centre map restricted to the foreground.

Usage (CPU, a few minutes per variant)::

    python experiments/center_targets.py WORK_DIR [--steps 300] [--variants none,fixed2,adaptive]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

VARIANTS = {
    "none": {"losses": ("pce", "img", "obj")},
    "fixed2": {"center_target": "fixed", "center_sigma": 2.0},
    "fixed4": {"center_target": "fixed", "center_sigma": 4.0},
    "adaptive": {"center_target": "adaptive", "center_scale": 1.0},
    "adaptive07": {"center_target": "adaptive", "center_scale": 0.7},
    "masks": {"center_target": "adaptive", "supervision": "masks"},
}


def make_data(work: Path, *, n_train: int, size: str) -> tuple[Path, Path, Path]:
    from pointseg_cli.annotate import points_from_masks
    from pointseg_cli.demo import generate_demo_data
    from pointseg_cli.io.points import write_points_csv

    train, test = work / "train", work / "test"
    if not (work / "points.csv").is_file():
        generate_demo_data(train, kind="3d-nuclei", n=n_train, size=size, seed=11)
        generate_demo_data(test, kind="3d-nuclei", n=2, size=size, seed=12)
        res = points_from_masks(train, images=train, mask_class="nucleus", jitter=2.0, seed=0)
        write_points_csv(work / "points.csv", res.table)
    return train, test, work / "points.csv"


def predict(model: torch.nn.Module, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Foreground (bool) and centre map of a whole normalised volume ``(C, Z, Y, X)``."""
    from pointseg_cli.nets import forward_heads

    spatial = image.shape[1:]
    pad = [(-s) % 8 for s in spatial]
    x = torch.from_numpy(np.pad(image, [(0, 0)] + [(0, p) for p in pad], mode="reflect"))[None]
    with torch.no_grad():
        out = forward_heads(model, x)
    crop = (0, slice(None), *(slice(0, s) for s in spatial))
    fg = out["logits"][crop].argmax(0).numpy() > 0
    cen = out["centers"][crop][0].numpy() if "centers" in out else None
    return fg, cen


def decode_centers(fg: np.ndarray, cen: np.ndarray, *, threshold: float, min_distance: int = 2) -> np.ndarray:
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    peaks = peak_local_max(cen, min_distance=min_distance, threshold_abs=threshold, labels=fg.astype(np.int32))
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-cen, markers, mask=fg)


def decode_distance(fg: np.ndarray, *, min_distance: int = 3) -> np.ndarray:
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(fg, sampling=(2.0, 1.0, 1.0))
    peaks = peak_local_max(dist, min_distance=min_distance, labels=fg.astype(np.int32))
    markers = np.zeros(fg.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=fg)


def evaluate(run_dir: Path, test: Path) -> dict[str, float]:
    from pointseg_cli.io.images import read_image
    from pointseg_cli.metrics import label_components, match_instances, sum_instance_scores
    from pointseg_cli.model import load_model
    from pointseg_cli.preprocess.normalize import Normalization, normalize_image

    loaded = load_model(run_dir)
    norm = Normalization.from_dict(loaded.normalization)
    scores: dict[str, list] = {}
    inter = union = 0
    for img_path in sorted(p for p in test.glob("*.tif") if p.name.count(".") == 1):
        gt = read_image(img_path.with_name(img_path.stem + ".masks.tif"))
        image = normalize_image(read_image(img_path), norm)[None].astype(np.float32)
        fg, cen = predict(loaded.model, image)
        inter += int((fg & (gt > 0)).sum())
        union += int((fg | (gt > 0)).sum())
        preds = {"components": label_components(fg.astype(np.uint8)), "distance": decode_distance(fg)}
        if cen is not None:
            for t in (0.2, 0.4, 0.6):
                preds[f"centers@{t}"] = decode_centers(fg, cen, threshold=t)
        for name, pred in preds.items():
            scores.setdefault(name, []).append(match_instances(pred, gt, threshold=0.5))
    out = {"fg_iou": inter / max(union, 1)}
    for name, parts in scores.items():
        s = sum_instance_scores(parts)
        out[f"f1_{name}"] = s.f1
        out[f"n_pred_{name}"] = s.n_pred
    out["n_gt"] = sum_instance_scores(scores["components"]).n_gt
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--variants", default="none,fixed2,adaptive")
    p.add_argument("--n-train", type=int, default=4)
    p.add_argument("--size", default="32x128x128")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from pointseg_cli.io.points import read_points_csv
    from pointseg_cli.train.config import TrainConfig
    from pointseg_cli.train.loop import train

    a.work.mkdir(parents=True, exist_ok=True)
    train_dir, test_dir, points = make_data(a.work, n_train=a.n_train, size=a.size)
    table = read_points_csv(points)
    base = TrainConfig(
        arch="unet3d", ndim=3, channels=1, classes=("nucleus",), base_filters=8, filter_growth=2,
        crop=(32, 64, 64), batch_size=2, w=10.0, point_radius=2, bg_weight=0.0, beta_bg=1.0, beta_obj=1.0,
        max_steps=a.steps, steps_per_epoch=50, epochs=1000, val_fraction=0.25, val_masks_dir=str(train_dir),
        device="cpu", seed=a.seed, masks_dir=str(train_dir),
    )  # fmt: skip
    results_path = a.work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for name in a.variants.split(","):
        key = f"{name}/seed{a.seed}/steps{a.steps}"
        if key in results:
            continue
        run_dir = a.work / "runs" / key.replace("/", "_")
        t0 = time.perf_counter()
        if not (run_dir / "best.pt").is_file():
            train(base.replace(**VARIANTS[name]), table, [train_dir], run_dir)
        res = evaluate(run_dir, test_dir)
        res["train_seconds"] = time.perf_counter() - t0
        results[key] = res
        results_path.write_text(json.dumps(results, indent=1))
        print(key, json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in res.items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
