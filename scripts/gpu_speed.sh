#!/usr/bin/env bash
# The GPU half of issue 14 in one run (a few minutes on an H100/H200 once built):
#  1. conv tiles: heuristic against autotuned, per conv case of the models, with % of FP32 peak
#     (examples/conv_autotune.rs);
#  2. training steps of the patch model and of the phasing network, bragg (OpenCL) against
#     PyTorch cuDNN (TF32 off) on the same GPU, alternated twice
#     (examples/train_step_time.rs, scripts/train_step_torch.py).
# Usage (project root): [PEAK_GFLOPS=67000] [PY=python3] [BRAGG_DEVICE=opencl:N] scripts/gpu_speed.sh [OUTDIR]
# PEAK_GFLOPS is the FP32 (non-tensor-core) peak of the GPU: ~67000 for H100/H200 SXM.
set -uo pipefail
out=${1:-${OUT:-target/gpu_speed}}
mkdir -p "$out"
PY=${PY:-python3}
PEAK=${PEAK_GFLOPS:-67000}
export BRAGG_CACHE_DIR=${BRAGG_CACHE_DIR:-$PWD/target/bragg-cache}
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>/dev/null | tee "$out/gpu.txt"
cargo build --release --examples -q 2>&1 | tail -5
./target/release/bragg devices | tee "$out/devices.txt"
dev=${BRAGG_DEVICE:-$(awk '/opencl:[0-9]+/ && /GPU/ {for (i = 1; i <= NF; i++) if ($i ~ /^opencl:[0-9]+$/) {print $i; exit}}' "$out/devices.txt")}
[ -n "$dev" ] || { echo "no OpenCL GPU found" >&2; exit 1; }
echo "OpenCL device: $dev" | tee -a "$out/gpu.txt"
./target/release/examples/conv_autotune --device "${dev#opencl:}" --peak-gflops "$PEAK" --rounds 7 \
  2>&1 | grep -v "warning generated" | tee "$out/conv_autotune.txt"
for round in 1 2; do
  for case in patch phase; do
    ./target/release/examples/train_step_time "$case" --device "$dev" --steps 10 2>&1 | tee "$out/bragg_${case}_$round.txt" | tail -1
    "$PY" scripts/train_step_torch.py "$case" --steps 10 2>&1 | tee "$out/torch_${case}_$round.txt" | tail -1
  done
done
echo "== summary" | tee "$out/summary.txt"
grep -h "geometric mean" "$out/conv_autotune.txt" | tee -a "$out/summary.txt"
grep -h "^RESULT" "$out"/bragg_*.txt "$out"/torch_*.txt | sort | tee -a "$out/summary.txt"
