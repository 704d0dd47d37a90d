#!/usr/bin/env bash
# bragg vs PyTorch on the CPU, interleaved in one run (2 threads each), printing the CPU-time
# ratio table (torch / bragg, > 1 = bragg faster) of the cases of issue 14.
#
# Usage (from the project root): scripts/speed_vs_torch.sh [cases...] [--reps N]
#   cases: conv3d_d1 conv3d_d4 conv2d train infer (default: all), --reps 5 by default.
# Needs a Python with torch: TORCH_PY (default ~/.cache/checks-torch/bin/python).
# The harness (a timing server over the public API + torch_speed.py) lives in
# ../shared/checks/tools/speed (override with SPEED_TOOLS); it is built against this checkout.
set -euo pipefail
proj=$(cd "$(dirname "$0")/.." && pwd)
tools=${SPEED_TOOLS:-$proj/../shared/checks/tools/speed}
tp=${TORCH_PY:-$HOME/.cache/checks-torch/bin/python}
[ -x "$tp" ] || { echo "no Python with torch at $tp (set TORCH_PY)" >&2; exit 1; }
[ -f "$tools/torch_speed.py" ] || { echo "no harness at $tools (set SPEED_TOOLS)" >&2; exit 1; }
args=("$@")
[ ${#args[@]} -gt 0 ] && [[ ${args[0]} != --* ]] || args=(conv3d_d1 conv3d_d4 conv2d train infer "${args[@]}")
printf '%s\n' "${args[@]}" | grep -q -- '--reps' || args+=(--reps 5)
b=$(mktemp -d); trap 'rm -rf "$b"' EXIT
cp -r "$tools/src" "$b/"
sed "s|^bragg = { path = \"[^\"]*\" }|bragg = { path = \"$proj\" }|" "$tools/Cargo.toml" > "$b/Cargo.toml"
cp "$proj/Cargo.lock" "$b/" 2>/dev/null || true
CARGO_TARGET_DIR=$proj/target cargo build --release -q --manifest-path "$b/Cargo.toml"
echo "# $(date -u +%Y-%m-%dT%H:%MZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), torch $("$tp" -c 'import torch; print(torch.__version__)')"
"$tp" "$tools/torch_speed.py" "$proj/target/release/bragg-speed" "${args[@]}" | tee "$b/log"
json=$(grep '^JSON ' "$b/log" | sed 's/^JSON //')
"$tp" - "$json" <<'PY'
import sys, json
r = json.loads(sys.argv[1])
print("\n| case | bragg CPU s | torch CPU s | CPU-time ratio torch/bragg (median, min-max) | wall ratio |")
print("|---|---|---|---|---|")
for k, v in r.items():
    print(f"| {k} | {v['cpu_bragg_median']:.2f} | {v['cpu_torch_median']:.2f} | {v['cpu_ratio_median']:.2f} ({v['cpu_ratio_min']:.2f}-{v['cpu_ratio_max']:.2f}) | {v['ratio_median']:.2f} |")
PY
