#!/usr/bin/env bash
# UNet vs the classical fills across 3/6/9/12-px cross gaps, at a scale that needs a GPU:
# 8,192 training patterns of 64x64 per gap width, 15 epochs, UNet width 16 depth 4, lr 5e-4
# (2e-3 made this width collapse to a constant output, on the CPU too).
# Usage: BRAGG_DEVICE=opencl:1 [GAPS="3 6 9 12"] [EPOCHS=15] scripts/gpu_inpaint_study.sh OUTDIR [bragg binary]
set -euo pipefail
O=${1:-out/gpu_study}
B=${2:-./target/release/bragg}
SIZE=64; NTRAIN=8192; NVAL=256; NTEST=256; EPOCHS=${EPOCHS:-15}; BATCH=32; LR=${LR:-5e-4}; WIDTH=16; DEPTH=4
GAPS=${GAPS:-3 6 9 12}
mkdir -p "$O"
for g in $GAPS; do
  $B simulate --dim 2 --size $SIZE --count $NTRAIN --gap cross:$g --seed $((100+g)) --out "$O/train_c$g.npz" 2>/dev/null &
  $B simulate --dim 2 --size $SIZE --count $NVAL --gap cross:$g --seed $((200+g)) --out "$O/val_c$g.npz" 2>/dev/null &
  $B simulate --dim 2 --size $SIZE --count $NTEST --gap cross:$g --seed $((300+g)) --out "$O/test_c$g.npz" 2>/dev/null &
done
wait
for g in $GAPS; do
  start=$(date +%s)
  $B train --model unet --data "$O/train_c$g.npz" --val "$O/val_c$g.npz" --epochs $EPOCHS \
    --batch $BATCH --lr $LR --loss mse+ssim+grad --width $WIDTH --depth $DEPTH \
    --out "$O/unet_c$g.safetensors" --quiet 2> "$O/unet_c$g.train.txt"
  echo "gap $g: trained in $(( $(date +%s) - start )) s"
  $B eval --model "$O/unet_c$g.safetensors" --data "$O/test_c$g.npz" --json > "$O/unet_c$g.eval.json"
  $B eval --model "$O/unet_c$g.safetensors" --data "$O/test_c$g.npz" | grep -E "^\| (unet|laplace|linear|nearest) "
done
