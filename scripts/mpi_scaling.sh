#!/usr/bin/env bash
# Data-parallel scaling of `bragg train`: steps/s and the gradient all-reduce time per step on
# 1 process and on 2..N MPI ranks, for MSD-Net and a UNet on simulated 2-D patterns, with the
# same global batch. Builds with --features mpi (needs Open MPI, see README "Many machines").
#
# Usage: [MODELS="msd unet"] scripts/mpi_scaling.sh [MAX_RANKS] [EPOCHS]   (defaults: 2, 2)
# Prints one table row per (model, ranks); the first epoch is skipped (warm-up) when EPOCHS > 1.
set -euo pipefail
cd "$(dirname "$0")/.."
max=${1:-2}
epochs=${2:-2}
cargo build --release -q --features mpi
B=$PWD/target/release/bragg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$B" simulate --dim 2 --size 64 --count 256 --gap line:4 --seed 5 --out d.npz >/dev/null 2>&1
root=""
if [ "$(id -u)" -eq 0 ]; then root="--allow-run-as-root"; fi
echo "| model | parameters | global batch | ranks | steps/s | all-reduce ms/step | of which waiting | numbers/step |"
echo "|---|---|---|---|---|---|---|---|"
for model in ${MODELS:-msd unet}; do
    # "1t": one process with one thread (the per-core baseline of ranks bound to one core each).
    for n in 1t $(seq 1 "$max"); do
        out="$model-$n.safetensors"
        args=(--device cpu train --model "$model" --data d.npz --epochs "$epochs" --batch 16 --seed 1 --quiet --out "$out")
        if [ "$n" = 1t ]; then
            RAYON_NUM_THREADS=1 "$B" "${args[@]}" 2>err.txt
        elif [ "$n" -eq 1 ]; then
            "$B" "${args[@]}" 2>err.txt
        else
            mpirun $root --oversubscribe -np "$n" "$B" "${args[@]}" 2>err.txt
        fi
        params=$(grep -o '([0-9]* parameters)' err.txt | tr -dc 0-9)
        # Steps of an epoch: 256 / 16; seconds of the last epoch from the JSON log.
        secs=$(python3 -c "import json;print(json.load(open('${out%.safetensors}.log.json'))[-1]['seconds'])")
        steps_s=$(python3 -c "print(f'{16 / $secs:.2f}')")
        ar=$(grep -o 'all-reduce: .*slowest' err.txt || true)
        ms=$(echo "$ar" | awk '{print $2}')
        nums=$(echo "$ar" | awk '{print $6}' | tr -dc 0-9)
        wait=$(echo "$ar" | { grep -o 'which [0-9.]*' || true; } | awk '{print $2}')
        echo "| $model | $params | 16 | $n | $steps_s | ${ms:--} | ${wait:--} | ${nums:--} |"
    done
done
