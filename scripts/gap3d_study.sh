#!/usr/bin/env bash
# The 3-D gap-inpainting study of REPORT.md: held-out simulated 64^3 crystals (8 per width,
# seeds never used in training), plane gaps of 3/6/9/12 px placed through or next to the Bragg
# peak (`line:W`: within +-8 px of the centre, normal to a detector axis), 1e5-1e8 photons.
# Every method is scored with `bragg eval3d` (PCC of log(1+I) in the gap against the Poisson
# counts, relative L2, gap sum ratio, noise ceiling). Usage: scripts/gap3d_study.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/gap3d}
B=${BRAGG:-target/release/bragg}
COUNT=${COUNT:-8}
METHODS=${METHODS:-model,model+physics,linear,log-linear,laplace,log-laplace,biharmonic,log-biharmonic}
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in 3 6 9 12; do
  "$B" simulate --dim 3 --size 64 --count "$COUNT" --gap line:$w --photons 1e5..1e8 \
    --seed $((9000 + w)) --out "$tmp/t$w.npz" >/dev/null 2>&1
  "$B" eval3d --device cpu --data "$tmp/t$w.npz" --methods "$METHODS" --json > "$OUT/width$w.json"
  echo "width $w done"
done
