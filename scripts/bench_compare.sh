#!/usr/bin/env bash
# Runs the bragg CPU kernel bench (benches/conv.rs) and its PyTorch counterpart
# (scripts/bench_torch.py, 2 threads) and prints a bragg / PyTorch ratio table.
#
# Usage: scripts/bench_compare.sh [--quick]     (--quick: the two conv3d cases only)
# Needs a venv with torch at .venv (python3 -m venv .venv && .venv/bin/pip install torch numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
if [[ "${1:-}" == "--quick" ]]; then quick=1; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== bragg (cargo bench --bench conv) ==" >&2
env ${quick:+BRAGG_BENCH_QUICK=1} cargo bench --bench conv 2>/dev/null | tee "$tmp/bragg.txt" >&2
echo "== PyTorch (scripts/bench_torch.py) ==" >&2
.venv/bin/python scripts/bench_torch.py --threads 2 ${quick:+--quick} | tee "$tmp/torch.txt" >&2

# criterion prints "group/function" then a "thrpt: [lo mid hi]" line; keep the middle value,
# in G-units (Gelem/s = GFLOP/s, GiB/s converted to GB/s).
awk '
  /^[^ ].*\// { name = $1 }
  /thrpt:/ && $3 ~ /\/s$/ {
    v = $4; u = $5
    if (u ~ /^Melem/) v /= 1000; if (u ~ /^Kelem/) v /= 1e6
    if (u ~ /^GiB/) v *= 1.073741824; if (u ~ /^MiB/) v *= 1.048576 / 1000
    print name "\t" v
  }' "$tmp/bragg.txt" > "$tmp/bragg.tsv"

map_metric() {  # torch metric -> criterion function name
  case "$1" in
    fwd_bwd_gflops) echo autograd_fwd_bwd ;;
    maxpool_forward_gbs) echo maxpool_forward ;;
    maxpool_fwd_bwd_gbs) echo maxpool_fwd_bwd ;;
    upsample_forward_gbs) echo upsample_forward ;;
    upsample_fwd_bwd_gbs) echo upsample_fwd_bwd ;;
  esac
}

printf "\n%-34s %-18s %10s %10s %7s\n" case metric bragg pytorch ratio
while IFS=$'\t' read -r case metric tv; do
  fn=$(map_metric "$metric")
  bv=$(awk -F'\t' -v k="$case/$fn" '$1 == k { print $2 }' "$tmp/bragg.tsv")
  unit=$([[ "$metric" == *gflops ]] && echo "GFLOP/s" || echo "GB/s")
  if [[ -n "$bv" ]]; then
    ratio=$(awk -v a="$bv" -v b="$tv" 'BEGIN { printf "%.2f", a / b }')
    printf "%-34s %-18s %10.2f %10.2f %7s  (%s)\n" "$case" "$fn" "$bv" "$tv" "$ratio" "$unit"
  fi
done < "$tmp/torch.txt"
