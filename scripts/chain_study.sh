#!/usr/bin/env bash
# Success rate of a phasing setting over simulated crystals, with and without a gap next to
# the Bragg peak (REPORT.md section 8.8). For each crystal seed C: simulate a 64^3 crystal at
# 1e8 photons without a gap and with `--gap line:6`, phase each from random starts 0..STARTS-1
# (one run each) with the extra `bragg phase` arguments, and print the complex error after
# registration against the true object.
#
# Usage: scripts/chain_study.sh OUTDIR "CRYSTAL SEEDS" STARTS [bragg phase args...]
#   e.g. scripts/chain_study.sh /tmp/cs "21 31 41" 3 --algorithm "RAAR**600,ER**200"
# Output lines: `<crystal> <start> gap-free|masked <complex error>`.
set -euo pipefail
B=${BRAGG:-$(dirname "$0")/../target/release/bragg}
out=$1; crystals=$2; starts=$3; shift 3
mkdir -p "$out"
for c in $crystals; do
  for g in none line:6; do
    f="$out/s${c}_${g%%:*}.npz"
    [ -f "$f" ] || "$B" simulate --dim 3 --size 64 --count 1 --gap "$g" --photons 1e8..1e8 --seed "$c" --out "$f" >/dev/null
  done
  for ((s = 0; s < starts; s++)); do
    for kind in none line; do
      "$B" phase --input "$out/s${c}_${kind}.npz" --seed "$s" "$@" --out "$out/r.npz" >/dev/null 2>&1
      e=$("$B" compare --result "$out/r.npz" --truth "$out/s${c}_none.npz" --json \
        | python3 -c "import json, sys; print(round(json.load(sys.stdin)['complex_error'], 4))")
      echo "$c $s $([ "$kind" = none ] && echo gap-free || echo masked) $e"
    done
  done
done
