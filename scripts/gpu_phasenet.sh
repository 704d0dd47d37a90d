#!/usr/bin/env bash
# Trains the 3-D phasing network at a scale that needs a GPU, then runs the phasing study with it.
# On the 2-core CPU the shipped network (width 8, 12k patterns) is far from what the oracle study
# says a correct 32^3 phase gives (REPORT section 7); this is the run to make when a device is lent.
# Usage: BRAGG_DEVICE=opencl:0 [STEPS=20000] [WIDTH=24] scripts/gpu_phasenet.sh OUTDIR [bragg binary]
# Resume an interrupted run by running the same command again (the checkpoint beside the model).
set -euo pipefail
O=${1:-out/gpu_phasenet}
B=${2:-./target/release/bragg}
STEPS=${STEPS:-20000}; WIDTH=${WIDTH:-24}; DEPTH=${DEPTH:-4}; BATCH=${BATCH:-16}; LR=${LR:-1e-3}
mkdir -p "$O"
resume=""
[ -f "$O/phasenet3d.ckpt.safetensors" ] && resume="--resume"
start=$(date +%s)
$B train-phasenet --dim 3 --size 32 --width "$WIDTH" --depth "$DEPTH" --batch "$BATCH" \
  --steps "$STEPS" --lr "$LR" --weight-power 4 --checkpoint-every 200 $resume \
  --out "$O/phasenet3d.safetensors" 2> "$O/train.txt"
echo "trained in $(( $(date +%s) - start )) s"
for strain in high low; do
  $B phasing-study --dim 3 --size 64 --count 8 --runs 4 --strain $strain \
    --start-model "$O/phasenet3d.safetensors" --json "$O/study3d_$strain.json"
done
