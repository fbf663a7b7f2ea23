#!/usr/bin/env bash
# GPU check for pointseg on a CUDA machine: installs what is missing, runs the GPU tests and the
# GPU benchmark (ours vs MONAI, fp16, 64x1024x1024) and prints one summary at the end.
#
# Usage, from the project root on the CUDA machine:
#     bash benchmarks/gpu_check.sh [WHEEL_DIR]
# WHEEL_DIR (default: ./.whl) may hold wheels to install offline: onnxruntime-gpu (for the machine's
# CUDA), pooch, monai. Without a wheel, pip is asked (needs a package index). An existing torch
# with CUDA is kept (monai and pooch are installed with --no-deps so torch is never replaced).
# Results are written to $OUT (if set) or ./gpu_check/ as summary.txt plus the raw logs.
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-.whl}
out=${OUT:-gpu_check}
mkdir -p "$out"
site=${GPU_CHECK_SITE:-/tmp/pointseg-gpu-site}
mkdir -p "$site"
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

log() { echo "[gpu_check] $*" | tee -a "$out/summary.txt"; }
: > "$out/summary.txt"

# 1. What is there.
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/gpu.txt" 2>&1 \
  && log "GPU: $(head -1 "$out/gpu.txt")" || log "GPU: nvidia-smi failed ($(head -1 "$out/gpu.txt"))"
$py -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())" > "$out/torch.txt" 2>&1
log "torch: $(cat "$out/torch.txt")"

# 2. Install what is missing (offline wheels first).
if ls "$wheels"/*.whl >/dev/null 2>&1; then
  $py -m pip install -q --no-index --no-deps --target "$site" "$wheels"/*.whl > "$out/pip.txt" 2>&1 \
    || log "pip install of $wheels/*.whl failed: $(tail -1 "$out/pip.txt")"
fi
for mod in pooch monai onnxruntime; do
  if ! $py -c "import $mod" >/dev/null 2>&1; then
    pkg=$mod; [ "$mod" = onnxruntime ] && pkg=onnxruntime-gpu
    $py -m pip install -q --no-deps --target "$site" "$pkg" >> "$out/pip.txt" 2>&1 || log "could not install $pkg"
  fi
done
$py - > "$out/ort.txt" 2>&1 <<'PY'
import onnxruntime as ort
if hasattr(ort, "preload_dlls"):
    ort.preload_dlls()
print(ort.__version__, ort.get_available_providers())
PY
log "onnxruntime: $(tail -1 "$out/ort.txt")"
grep -q CUDAExecutionProvider "$out/ort.txt" || log "WARNING: no CUDAExecutionProvider: the GPU figures below are not GPU figures"

# 3. GPU tests.
$py -m pytest -q -m gpu -p no:cacheprovider > "$out/pytest_gpu.txt" 2>&1
log "GPU tests (pytest -m gpu): exit $?; $(tail -1 "$out/pytest_gpu.txt")"

# 4. GPU benchmark: ours vs MONAI on the same GPU.
timeout "${GPU_BENCH_TIMEOUT:-420}" $py benchmarks/segment_bench.py --device cuda > "$out/segment_bench.txt" 2>&1
log "segment_bench --device cuda: exit $?"
grep -E "machine|volume|ours|MONAI|ratio|peer|agree|blending" "$out/segment_bench.txt" | sed 's/^/    /' | tee -a "$out/summary.txt"

echo
echo "===== gpu_check summary ($out/summary.txt) ====="
cat "$out/summary.txt"
