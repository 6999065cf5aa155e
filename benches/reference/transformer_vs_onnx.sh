#!/usr/bin/env bash
# One transformer pass, ours against onnxruntime on the same graph, alternated: each round runs
# examples/transformer_pass_timing.rs then onnx_transformer.py (each: 2 warm-up passes, RUNS timed
# passes, min and median), so ours / ORT is taken from runs seconds apart, and prints the ratio of
# the minima per round and the median of those ratios. Both check nothing here: run
# `onnx_transformer.py --check DIR` once first (see BENCHMARKS.md) to see the graphs agree.
# Usage (from the repository root, after `cargo build --release --example transformer_pass_timing`):
#   benches/reference/transformer_vs_onnx.sh [ROUNDS=4] [PRESET=paper] [RUNS=3] [PYTHON=python3, one with onnxruntime, onnx and numpy] [ATTENTION=plain]
# Threads: ours uses RAYON_NUM_THREADS (default here 2), ORT intra_op_num_threads=THREADS (2).
set -euo pipefail
rounds=${1:-4}
preset=${2:-paper}
runs=${3:-3}
python=${4:-python3}
attention=${5:-plain}
threads=${THREADS:-2}
ours=target/release/examples/transformer_pass_timing
[ -x "$ours" ] || { echo "build first: cargo build --release --example transformer_pass_timing" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
min_ms() { sed -n 's/.* min \([0-9.]*\) ms .*/\1/p' <<< "$1"; }
for r in $(seq "$rounds"); do
    a=$(RAYON_NUM_THREADS=$threads "$ours" --preset "$preset" --runs "$runs")
    b=$("$python" benches/reference/onnx_transformer.py --preset "$preset" --runs "$runs" --threads "$threads" --attention "$attention")
    ratio=$(python3 -c "print(f'{$(min_ms "$a") / $(min_ms "$b"):.3f}')")
    printf 'round %d\n  %s\n  %s\n  ours / ort (min): %s\n' "$r" "$a" "$b" "$ratio"
    echo "$ratio" >> "$log"
done
python3 - "$log" "$preset" <<'PY'
import statistics, sys
r = [float(x) for x in open(sys.argv[1])]
print(f"{sys.argv[2]}: ours / onnxruntime over {len(r)} rounds: median {statistics.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f})")
PY
