#!/usr/bin/env bash
# Trains the registered model granules-3d-sim on synthetic SIM volumes (pointseg demo-data --kind
# 3d-sim), exports it (fp16) and scores it on the held-out volumes. Run from the repository root:
#   bash models/granules-3d-sim.sh [WORK_DIR]          (default WORK_DIR: runs/granules)
# The volumes and their split by cell are those of the SIM table in docs/results.md (8 volumes,
# seed 2021): sim_000-003 train, sim_004-005 validation (checkpoint choice), sim_006-007 test.
set -euo pipefail
work=${1:-runs/granules}
steps=${STEPS:-300}
classes=lipofuscin,melanolipofuscin,melanosome
rm -rf "$work/sim" "$work/masks" "$work/test" "$work/run"
mkdir -p "$work/masks" "$work/test"
pointseg --quiet demo-data "$work/sim" --kind 3d-sim --n 8 --size 24x192x192 --seed 2021
# class maps as masks: <stem>.labels.tif is the name train and evaluate pair with an image
for i in 004 005 006 007; do cp "$work/sim/sim_$i.classes.tif" "$work/masks/sim_$i.labels.tif"; done
for i in 006 007; do ln -sf "$(realpath "$work/sim/sim_$i.tif")" "$work/test/sim_$i.tif"; done
pointseg --quiet train "$work/sim/points.trainval.csv" "$work/sim" --out "$work/run" --arch unet3d \
  --base-filters 8 --filter-growth 2 --crop 16,64,64 --batch-size 4 --equalize --w 14 --img-scale crop \
  --max-steps "$steps" --steps-per-epoch 50 --epochs 1000 --val-images sim_004,sim_005 \
  --val-masks "$work/masks" --classes "$classes" --device auto --seed 0
pointseg --quiet export "$work/run" --out "$work/granules-3d-sim.onnx" --precision fp16
pointseg --quiet segment "$work/test" --out-dir "$work/pred" --model "$work/granules-3d-sim.onnx" --overwrite
pointseg evaluate "$work/pred" "$work/masks" --classes "$classes" --json "$work/granules-3d-sim-test.json"
