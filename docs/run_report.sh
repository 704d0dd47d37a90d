#!/usr/bin/env bash
# Reproduces the numbers of REPORT.md (2-core CPU scale). Usage: docs/run_report.sh [OUTDIR]
set -euo pipefail
B=${BRAGG:-./target/release/bragg}
O=${1:-out/report}
SIZE=64; NTRAIN=1024; NVAL=64; NTEST=128; EPOCHS=8; BATCH=16; LR=2e-3; WIDTH=8; DEPTH=4
mkdir -p "$O"
sim() { # gap seed count out
  [ -f "$4" ] || $B simulate --dim 2 --size $SIZE --count "$3" --gap "$1" --seed "$2" --out "$4" 2>/dev/null
}
for g in 3 6 9 12; do
  sim cross:$g $((100+g)) $NTRAIN "$O/train_c$g.npz"
  sim cross:$g $((200+g)) $NVAL "$O/val_c$g.npz"
  sim cross:$g $((300+g)) $NTEST "$O/test_c$g.npz"
done
run() { # name model gap loss extra...
  local name=$1 model=$2 g=$3 loss=$4; shift 4
  if [ ! -f "$O/$name.eval.json" ]; then
    $B train --model "$model" --data "$O/train_c$g.npz" --val "$O/val_c$g.npz" --epochs $EPOCHS \
      --batch $BATCH --lr $LR --loss "$loss" --out "$O/$name.safetensors" --quiet "$@" 2> "$O/$name.train.txt"
    $B eval --model "$O/$name.safetensors" --data "$O/test_c$g.npz" --json > "$O/$name.eval.json"
  fi
  echo "done $name"
}
# Loss study, 9-px cross gaps.
# (the mse+ssim+grad run is unet_c9 of the model study)
for loss in mse mae ssim; do
  run "loss_$loss" unet 9 "$loss" --width $WIDTH --depth $DEPTH
done
# Models across gap widths.
for g in 3 6 9 12; do
  run "unet_c$g" unet $g mse+ssim+grad --width $WIDTH --depth $DEPTH
  run "dilated_c$g" dilated-unet $g mse+ssim+grad --width $WIDTH --depth $DEPTH
done
# MSD-Net (thesis configuration, 4,112 parameters) is ~15x slower per sample on the CPU
# (30 single-output dilated convolutions at full resolution): 24 steps (384 patterns) per epoch.
for g in 9 3 6 12; do
  run "msd_c$g" msd $g mse+ssim+grad --max-steps 24
done
