#!/usr/bin/env bash
# The GPU half of issue 14 in one run (a few minutes on an H100/H200 once built):
#  build   release binary, examples and the OpenCL tests;
#  parity  the OpenCL parity and autotuning tests on the GPU (correctness of every tile shape
#          the tuner may pick, of the prefetch variant and of the fused activation);
#  conv    conv tiles, heuristic against autotuned, per conv case of the models, with % of FP32
#          peak (examples/conv_autotune.rs);
#  train   training steps of the patch model and of the phasing network, bragg (OpenCL) against
#          PyTorch cuDNN (TF32 off) on the same GPU, alternated twice
#          (examples/train_step_time.rs, scripts/train_step_torch.py).
# Usage (project root): [STAGES="build parity conv train"] [PEAK_GFLOPS=67000] [PY=python3]
#   [BRAGG_DEVICE=opencl:N] scripts/gpu_speed.sh [OUTDIR]
# PEAK_GFLOPS is the FP32 (non-tensor-core) peak of the GPU: ~67000 for H100/H200 SXM. On a
# device with a per-call time limit, run the stages in two calls (STAGES="build parity conv",
# then STAGES="train"): the build and the tile cache (target/) are kept between calls.
set -uo pipefail
out=${1:-${OUT:-target/gpu_speed}}
mkdir -p "$out"
stages=" ${STAGES:-build parity conv train} "
PY=${PY:-python3}
PEAK=${PEAK_GFLOPS:-67000}
export BRAGG_CACHE_DIR=${BRAGG_CACHE_DIR:-$PWD/target/bragg-cache}
has() { [[ $stages == *" $1 "* ]]; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv 2>/dev/null | tee "$out/gpu.txt"
if has build; then
  cargo build --release --examples -q 2>&1 | tail -5
  cargo test --release --no-run -q --test opencl_parity --test opencl_autotune 2>&1 | tail -3
fi
./target/release/bragg devices | tee "$out/devices.txt"
dev=${BRAGG_DEVICE:-$(awk '/opencl:[0-9]+/ && /GPU/ {for (i = 1; i <= NF; i++) if ($i ~ /^opencl:[0-9]+$/) {print $i; exit}}' "$out/devices.txt")}
[ -n "$dev" ] || { echo "no OpenCL GPU found" >&2; exit 1; }
echo "OpenCL device: $dev" | tee -a "$out/gpu.txt"
if has parity; then
  BRAGG_REQUIRE_OPENCL=1 cargo test --release -q --test opencl_parity --test opencl_autotune \
    2>&1 | grep -E "test result|FAILED|panicked|testing on" | tee "$out/parity.txt"
fi
if has conv; then
  ./target/release/examples/conv_autotune --device "${dev#opencl:}" --peak-gflops "$PEAK" --rounds 7 \
    2>&1 | grep -v "warning generated" | tee "$out/conv_autotune.txt"
fi
if has train; then
  for round in 1 2; do
    for case in patch phase; do
      ./target/release/examples/train_step_time "$case" --device "$dev" --steps 10 2>&1 | tee "$out/bragg_${case}_$round.txt" | tail -1
      "$PY" scripts/train_step_torch.py "$case" --steps 10 2>&1 | tee "$out/torch_${case}_$round.txt" | tail -1
    done
  done
fi
echo "== summary" | tee "$out/summary.txt"
cat "$out/parity.txt" 2>/dev/null | grep "test result" | tee -a "$out/summary.txt"
grep -h "geometric mean" "$out/conv_autotune.txt" 2>/dev/null | tee -a "$out/summary.txt"
grep -h "^RESULT" "$out"/bragg_*.txt "$out"/torch_*.txt 2>/dev/null | sort | tee -a "$out/summary.txt"
