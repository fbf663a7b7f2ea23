#!/usr/bin/env python
"""Choose ``segment --min-distance`` and ``--peak-threshold`` on validation images.

Runs ``pointseg segment --instances METHOD`` for every pair of the grid on a folder of
validation images and scores the written ``.instances.tif`` against the ground-truth instance
masks (one-to-one matching at IoU 0.5, counts pooled over the images). Prints one row per pair,
best F1 first. Only validation images belong here: the test split is scored once, afterwards.

Usage (from the repository root)::

    python experiments/center_params.py --model nuclei-3d --images VAL_DIR --masks VAL_DIR \\
        --min-distance 2,3,5,7 --peak-threshold 0.2,0.3,0.4,0.5,0.6
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pointseg_cli.io.images import find_images, image_stem, read_image
from pointseg_cli.io.masks import find_mask
from pointseg_cli.metrics import match_instances, sum_instance_scores


def score(pred_dir: Path, images: list[Path], masks: Path) -> tuple[float, float, float]:
    """Pooled F1, precision and recall at IoU 0.5."""
    per = []
    for img in images:
        stem = image_stem(img)
        gt = np.asarray(read_image(find_mask(masks, stem, exclude=img)))
        per.append(match_instances(np.asarray(read_image(pred_dir / f"{stem}.instances.tif")), gt))
    s = sum_instance_scores(per)
    return s.f1, s.precision, s.recall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="model name or .onnx path")
    p.add_argument("--images", type=Path, required=True, help="folder of validation images")
    p.add_argument("--masks", type=Path, required=True, help="folder of their instance masks (<stem>.masks.tif, ...)")
    p.add_argument("--method", default="centers", choices=("centers", "distance"))
    p.add_argument("--min-distance", default="2,3,5,7")
    p.add_argument("--peak-threshold", default="0.2,0.3,0.4,0.5,0.6")
    a = p.parse_args(argv)
    images = find_images([a.images])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for md in a.min_distance.split(","):
            for thr in a.peak_threshold.split(","):
                out = Path(tmp) / f"md{md}-t{thr}"
                cmd = [sys.executable, "-m", "pointseg_cli", "--quiet", "segment", *map(str, images), "--model",
                       a.model, "--out-dir", str(out), "--instances", a.method, "--min-distance", md,
                       "--peak-threshold", thr]  # fmt: skip
                subprocess.run(cmd, check=True)
                f1, prec, rec = score(out, images, a.masks)
                rows.append((f1, prec, rec, md, thr))
                print(f"min_distance {md:>4}  threshold {thr:>4}  F1 {f1:.3f}  P {prec:.3f}  R {rec:.3f}", flush=True)
    print("\nbest first:")
    for f1, prec, rec, md, thr in sorted(rows, reverse=True)[:5]:
        print(f"  --min-distance {md} --peak-threshold {thr}: F1 {f1:.3f} (P {prec:.3f}, R {rec:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
