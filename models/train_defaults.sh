#!/usr/bin/env bash
# Trains the embedded default models (nuclei-2d, nuclei-3d) from simulated point clicks, exports
# them to ONNX and scores them on held-out data. Run from the repository root:
#   bash models/train_defaults.sh [WORK_DIR]          (default WORK_DIR: runs/defaults)
# BBBC007 is read from ../shared/data/bbbc007 (see that folder's README); nothing else is downloaded.
# Split of the 14 BBBC007 images by sorted name index i: i % 7 == 5 validation, i % 7 == 6 test,
# the other 10 train (the split of docs/training.md).
set -euo pipefail
work=${1:-runs/defaults}
bbbc=${BBBC007:-../shared/data/bbbc007}
steps2d=${STEPS2D:-1500}
steps3d=${STEPS3D:-600}
part=${PART:-all}   # all | 2d | 3d
mkdir -p "$work"

if [[ $part != 3d ]]; then

# ---- nuclei-2d: FPN-ResNet18 (width 32) on BBBC007 train+val points ------------------------------
pointseg --quiet annotate-import --from-masks "$bbbc" --images "$bbbc" --jitter 2 --seed 0 \
  --mask-class nucleus --out "$work/bbbc007_points_all.csv"
test_re='^(20P1_POS0007_D_1UL|A9_p9d),'
grep -Ev "$test_re" "$work/bbbc007_points_all.csv" > "$work/bbbc007_points.csv"
mkdir -p "$work/bbbc007_test"
for s in 20P1_POS0007_D_1UL A9_p9d; do
  ln -sf "$(realpath "$bbbc/$s.tif")" "$work/bbbc007_test/$s.tif"
  ln -sf "$(realpath "$bbbc/$s.labels.tif")" "$work/bbbc007_test/$s.labels.tif"
done
pointseg --quiet train "$work/bbbc007_points.csv" "$bbbc" --out "$work/nuclei-2d" --arch fpn --encoder resnet18 \
  --base-filters 32 --crop 128,128 --batch-size 16 --max-steps "$steps2d" --steps-per-epoch 50 --epochs 1000 \
  --val-images 20P1_POS0005_D_1UL,A9_p7d --val-masks "$bbbc" --device auto --seed 0
pointseg --quiet export "$work/nuclei-2d" --out "$work/nuclei-2d.onnx" --precision fp16
pointseg --quiet segment "$work/bbbc007_test" --out-dir "$work/nuclei-2d-test" --model "$work/nuclei-2d.onnx" --overwrite
pointseg evaluate "$work/nuclei-2d-test" "$work/bbbc007_test" --gt-binary --instances --json "$work/nuclei-2d-test.json"
fi

if [[ $part != 2d ]]; then
# ---- nuclei-3d: 3D U-Net (8 filters, doubling) on synthetic nuclei volumes ----------------------
rm -rf "$work/synth3d_train" "$work/synth3d_test" "$work/nuclei-3d"
pointseg --quiet demo-data "$work/synth3d_train" --kind 3d-nuclei --n 8 --size 48x160x160 --seed 11
pointseg --quiet demo-data "$work/synth3d_test" --kind 3d-nuclei --n 2 --size 48x160x160 --seed 12
pointseg --quiet annotate-import --from-masks "$work/synth3d_train" --images "$work/synth3d_train" --jitter 2 \
  --seed 0 --mask-class nucleus --out "$work/synth3d_points.csv"
pointseg --quiet train "$work/synth3d_points.csv" "$work/synth3d_train" --out "$work/nuclei-3d" --arch unet3d \
  --base-filters "${BASE3D:-8}" --filter-growth 2 --crop 32,64,64 --batch-size 4 --w "${W3D:-10}" \
  --point-radius 2 --bg-weight "${BG3D:-0}" --beta 1,1 \
  --max-steps "$steps3d" --steps-per-epoch 50 --epochs 1000 --val-fraction 0.25 \
  --val-masks "$work/synth3d_train" --device auto --seed 0
pointseg --quiet export "$work/nuclei-3d" --out "$work/nuclei-3d.onnx" --precision fp16
pointseg --quiet segment "$work/synth3d_test" --out-dir "$work/nuclei-3d-test" --model "$work/nuclei-3d.onnx" --overwrite
pointseg evaluate "$work/nuclei-3d-test" "$work/synth3d_test" --gt-binary --instances --json "$work/nuclei-3d-test.json"
fi
