#!/usr/bin/env bash
# The real-GPU test tier (design.md §3, tier 3) and the CUDA benchmarks, for a GPU machine that
# has CUDA (driver + libnvrtc) but no Rust toolchain.
#
#   scripts/gpu-tier.sh pack [DIR]   on a machine with Rust: build the test and bench binaries,
#                                    copy the CUDA-relevant ones (stripped) and `fdm` into DIR
#                                    (default gpu-tier/), with the source path they were built in.
#   scripts/gpu-tier.sh run [DIR] [LOGDIR]
#                                    on the GPU machine, from a copy of the repository: run every
#                                    packed test binary with FDM_REQUIRE_CUDA=1 (a missing GPU is a
#                                    failure, not a skip), then the CUDA benches (cuda_ops, and the
#                                    `cuda_*` benches of models and sampling) and, when PyTorch is
#                                    installed, benches/reference/torch_ops.py and torch_sampler.py.
#                                    Logs and a summary go to LOGDIR (default DIR/logs).
#
# The test binaries read fixtures (weights, photos) through the absolute source path baked in at
# build time; `run` links that path to the repository copy it runs in when the path is missing.
set -euo pipefail
cmd=${1:-}
dir=${2:-gpu-tier}

# Bench binaries packed and run (`run` runs only the benches named `cuda_*` of each).
CUDA_BENCHES="cuda_ops models sampling"

# Test files whose binaries exercise the CUDA path (the emulator test files are included: their
# `cuda::` variants run the same bodies on the GPU; `run` skips their `emu::` variants).
is_cuda_test() {
    case "$1" in
        cuda_*|kernels_compile|train_cuda) return 0 ;;
        *) return 1 ;;
    esac
}

pack() {
    mkdir -p "$dir/bin"
    local list
    list=$(cargo test --release --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
    while read -r name exe; do
        if is_cuda_test "$name"; then
            cp "$exe" "$dir/bin/test-$name"
        fi
    done <<< "$list"
    local bench name
    for name in $CUDA_BENCHES; do
        bench=$(cargo bench --bench "$name" --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$name")
        cp "$bench" "$dir/bin/bench-$name"
    done
    cargo build --release --quiet
    cp target/release/fdm "$dir/bin/fdm"
    strip "$dir"/bin/* 2>/dev/null || true
    gzip -9f "$dir"/bin/*
    pwd > "$dir/source-path"
    echo "packed $(ls "$dir/bin" | wc -l) binaries ($(du -sh "$dir/bin" | cut -f1), gzipped) into $dir; built in $(cat "$dir/source-path")"
}

run() {
    local logs=${3:-$dir/logs}
    mkdir -p "$logs"
    local src
    src=$(cat "$dir/source-path")
    if [ ! -e "$src" ]; then
        mkdir -p "$(dirname "$src")"
        ln -s "$PWD" "$src"
        echo "linked $src -> $PWD (fixtures are read through the build's source path)"
    fi
    local exe=$dir/unpacked
    mkdir -p "$exe"
    for z in "$dir"/bin/*.gz; do
        local b=${z##*/}
        gunzip -c "$z" > "$exe/${b%.gz}"
        chmod +x "$exe/${b%.gz}"
    done
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$logs/gpu.txt" || true
    local failed=0
    : > "$logs/summary.txt"
    for t in "$exe"/test-*; do
        local name=${t##*/test-}
        if FDM_REQUIRE_CUDA=1 "$t" --test-threads=1 --skip emu:: > "$logs/$name.log" 2>&1; then
            echo "ok     $name: $(grep -h '^test result' "$logs/$name.log" | tail -1)" | tee -a "$logs/summary.txt"
        else
            failed=$((failed + 1))
            echo "FAILED $name (log: $logs/$name.log)" | tee -a "$logs/summary.txt"
        fi
    done
    "$exe/bench-cuda_ops" --bench --warm-up-time 1 --measurement-time 3 > "$logs/bench-cuda_ops.log" 2>&1 || failed=$((failed + 1))
    # The model and sampling benches hold CPU benches too: only their `cuda_` ones run here.
    for name in models sampling; do
        if [ -e "$exe/bench-$name" ]; then
            "$exe/bench-$name" --bench cuda_ > "$logs/bench-$name.log" 2>&1 || failed=$((failed + 1))
        fi
    done
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        python3 benches/reference/torch_ops.py --json "$logs/torch_ops.json" > "$logs/torch_ops.log" 2>&1 || failed=$((failed + 1))
        python3 benches/reference/torch_ops.py --tf32 --json "$logs/torch_ops_tf32.json" > "$logs/torch_ops_tf32.log" 2>&1 || failed=$((failed + 1))
        # The sampling loop in eager PyTorch, paper preset, 302 passes (cuda_inpaint_paper_30pct_*).
        : > "$logs/torch_sampler.json"
        for flags in "--samples 1" "--samples 4" "--samples 1 --bf16" "--samples 4 --bf16"; do
            # shellcheck disable=SC2086
            python3 benches/reference/torch_sampler.py --device cuda --preset paper $flags --json "$logs/torch_sampler.json" \
                >> "$logs/torch_sampler.log" 2>&1 || failed=$((failed + 1))
        done
    fi
    echo "$failed failures; logs in $logs" | tee -a "$logs/summary.txt"
    [ "$failed" -eq 0 ]
}

case "$cmd" in
    pack) pack ;;
    run) run "$@" ;;
    *) echo "usage: scripts/gpu-tier.sh pack [DIR] | run [DIR] [LOGDIR]" >&2; exit 2 ;;
esac
