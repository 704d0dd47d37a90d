#!/usr/bin/env bash
# Partial-coherence study (issue 10): simulated 64^3 crystals whose intensity is blurred by a
# Gaussian PSF (sigma drawn in BLUR, voxels), phased without and with `--psf`; complex error
# of the best run after registration. Usage:
#   scripts/psf_study.sh OUT_DIR [COUNT=6] [BLUR=0.4..0.6] [SEED=500]
# BLUR=none simulates a fully coherent beam (the control: the PSF must not hurt).
# PSF_ARGS overrides the PSF flags (default `--psf 1.0`); CHAIN and RUNS the phasing; MODES=psf
# reruns only the PSF side (copy coherent-*.json from an earlier run of the same data first).
set -euo pipefail
out=${1:?usage: psf_study.sh OUT_DIR [COUNT] [BLUR] [SEED]}
count=${2:-6}
blur=${3:-0.4..0.6}
seed=${4:-500}
bragg=${BRAGG:-target/release/bragg}
chain=${CHAIN:-RAAR**600,ER**200}
runs=${RUNS:-4}
mkdir -p "$out"
{
  echo 'dim = 3'
  echo 'size = 64'
  echo "count = $count"
  echo "seed = $seed"
  echo 'gap = "none"'
  echo 'photons = "1e8..1e8"'
  echo 'oversampling = "2.5..3.5"'
  echo 'half = false'
  echo 'fields = ["truth", "object"]'
  if [ "$blur" != none ]; then
    printf '[realism]\nintensity_blur = "%s"\n' "$blur"
  fi
} > "$out/recipe.toml"
"$bragg" simulate --device cpu --recipe "$out/recipe.toml" --out "$out/data.npz" > /dev/null
for i in $(seq 0 $((count - 1))); do
  for mode in ${MODES:-coherent psf}; do
    extra=()
    # shellcheck disable=SC2206
    [ "$mode" = psf ] && extra=(${PSF_ARGS:---psf 1.0})
    "$bragg" phase --device cpu --input "$out/data.npz" --key truth --mask-key none --index "$i" \
      --algorithm "$chain" --runs "$runs" --seed "$i" --out "$out/$mode-$i.npz" "${extra[@]}" \
      --json > "$out/$mode-$i.phase.json" 2> /dev/null
    "$bragg" compare --device cpu --result "$out/$mode-$i.npz" --truth "$out/data.npz" \
      --index "$i" --json > "$out/$mode-$i.json"
  done
done
python3 - "$out" "$count" <<'PY'
import json, sys, statistics
out, count = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(count):
    e = {m: json.load(open(f"{out}/{m}-{i}.json"))["complex_error"] for m in ("coherent", "psf")}
    rows.append(e)
    print(f"crystal {i}: coherent {e['coherent']:.3f}  psf {e['psf']:.3f}")
for m in ("coherent", "psf"):
    v = [r[m] for r in rows]
    print(f"{m:9s} median {statistics.median(v):.3f}  mean {statistics.mean(v):.3f}  "
          f"< 0.2: {sum(x < 0.2 for x in v)}/{len(v)}")
print(f"psf better on {sum(r['psf'] < r['coherent'] for r in rows)}/{len(rows)}")
PY
