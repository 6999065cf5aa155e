#!/usr/bin/env bash
# Alternates short runs of our 1024^3 GEMM and the two 3x3 convs (examples/gemm_conv_timing.rs)
# with numpy's 1024^3 GEMM (numpy_gemm_timing.py), ROUNDS times, and prints the median of each
# column, so that ours / numpy is taken from runs seconds apart rather than minutes apart.
# Usage (from the repository root, after `cargo build --release --example gemm_conv_timing`):
#   benches/reference/interleave.sh [ROUNDS=8] [SECONDS=1.5] [PYTHON=python3]
set -euo pipefail
rounds=${1:-8}
secs=${2:-1.5}
python=${3:-python3}
ours=target/release/examples/gemm_conv_timing
log=$(mktemp)
for _ in $(seq "$rounds"); do
    "$ours" "$secs" gab >>"$log"
    "$python" benches/reference/numpy_gemm_timing.py "$secs" >>"$log"
done
cat "$log"
"$python" - "$log" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    rate = [float(x) for x in re.findall(r"([0-9.]+) GF/s", line)]
    rows.setdefault(line[:28].strip(), []).append(rate)
print(f"medians over {len(next(iter(rows.values())))} rounds: best / mean / cpu GFLOP/s")
for name, v in rows.items():
    best, mean, cpu = (statistics.median(x[i] for x in v) for i in range(3))
    print(f"{name:28} {best:7.1f} {mean:7.1f} {cpu:7.1f}   (best: min {min(x[0] for x in v):.1f}, max {max(x[0] for x in v):.1f})")
PY
rm -f "$log"
