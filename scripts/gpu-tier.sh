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
#                                    failure, not a skip), the CLI on the bundled model, then the
#                                    CUDA benches (cuda_ops, and the `cuda_*` benches of models and
#                                    sampling) and, when PyTorch is installed,
#                                    benches/reference/torch_ops.py and torch_sampler.py.
#                                    Logs and a summary go to LOGDIR (default DIR/logs).
#                                    GPU_TIER_BUDGET_S: seconds for the whole run (bench steps that
#                                    do not fit are skipped, the running one is cut at the budget);
#                                    GPU_TIER_ARCHIVE: a .tgz refreshed with the logs after each step;
#                                    GPU_TIER_JOBS: test binaries run at once (default 6).
#                                    With photos packed, it times a few training steps of phases
#                                    1a and 1b twice (scripts/train-speed.sh): as configured, and
#                                    with FDM_CONV_WIDE=1 FDM_CUBLAS_GRADIENTS=0 (1a shows the wide
#                                    convolution, 1b the Linear gradients on cuBLAS).
#   GPU_TIER_PHOTOS (pack): a folder whose first 10 JPEGs are packed for that (default
#                                    ../shared/data/photos; skipped when absent).
#
# The test binaries read fixtures (weights, photos) through the absolute source path baked in at
# build time; `run` links that path to the repository copy it runs in when the path is missing.
set -euo pipefail
cmd=${1:-}
dir=${2:-gpu-tier}

# Bench binaries packed and run (`run` runs only the benches named `cuda_*` of each).
CUDA_BENCHES="cuda_ops models sampling"

# Test files whose binaries exercise the CUDA path (the emulator test files are included: their
# `cuda::` variants run the same bodies on the GPU; `run` skips their `emu::` variants), and
# model_bf16, whose device test compares the bf16 model on the GPU with the CPU.
is_cuda_test() {
    case "$1" in
        cuda_*|kernels_compile|train_cuda|model_bf16) return 0 ;;
        *) return 1 ;;
    esac
}

pack() {
    local stage
    stage=$(mktemp -d)
    mkdir -p "$stage/bin" "$dir"
    local list
    list=$(cargo test --release --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])')
    while read -r name exe; do
        if is_cuda_test "$name"; then
            cp "$exe" "$stage/bin/test-$name"
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
        cp "$bench" "$stage/bin/bench-$name"
    done
    cargo build --release --quiet
    cp target/release/fdm "$stage/bin/fdm"
    strip "$stage"/bin/* 2>/dev/null || true
    # One xz stream over all binaries: they share most of their code, so this is ~6 MB where
    # per-file gzip is ~30 MB (the device's working-tree limit is 64 MiB, weights included).
    tar -C "$stage" -cf - bin | xz -9 -T1 > "$dir/bins.tar.xz"
    local photos=${GPU_TIER_PHOTOS:-../shared/data/photos}
    rm -rf "$dir/photos"
    if [ -d "$photos" ]; then
        mkdir -p "$dir/photos"
        find "$photos" -maxdepth 1 -name '*.jpg' | sort | head -n 10 | xargs -r cp -t "$dir/photos"
    fi
    rm -rf "$stage" "$dir/bin"
    pwd > "$dir/source-path"
    echo "packed $(tar -tJf "$dir/bins.tar.xz" | grep -c '^bin/.') binaries ($(du -h "$dir/bins.tar.xz" | cut -f1)) into $dir; built in $(cat "$dir/source-path")"
}

# find_nvrtc: the machine's own libnvrtc.so.13 on LD_LIBRARY_PATH.
. "$(dirname "$0")/gpu-nvrtc.sh"

# Copies the logs into $GPU_TIER_ARCHIVE (a .tgz) when set, so a run cut short still reports.
save_logs() {
    if [ -n "${GPU_TIER_ARCHIVE:-}" ]; then
        tar -C "$(dirname "$logs")" -czf "$GPU_TIER_ARCHIVE" "$(basename "$logs")" 2>/dev/null || true
    fi
}

# Seconds left of GPU_TIER_BUDGET_S (unset: plenty).
left() { echo $(( ${GPU_TIER_BUDGET_S:-100000} - SECONDS )); }

# Skipped there: the `emu::` variants (the CPU's job) and inpaint_cli_with_bf16_precision_cpu (a
# CPU test that runs the `fdm` binary from the build machine's target folder, absent there).
run_test_binary() {
    local t=$1 logs=$2 name=${1##*/test-}
    local t0=$SECONDS
    if FDM_REQUIRE_CUDA=1 timeout 240 "$t" --test-threads=1 --skip emu:: --skip inpaint_cli_with_bf16_precision_cpu > "$logs/$name.log" 2>&1; then
        echo "ok     $name ($((SECONDS - t0)) s): $(grep -h '^test result' "$logs/$name.log" | tail -1)" | tee -a "$logs/summary.txt"
    else
        echo "FAILED $name ($((SECONDS - t0)) s; log: $name.log): $(grep -h '^test result\|panicked' "$logs/$name.log" | head -3 | tr '\n' ' ')" | tee -a "$logs/summary.txt"
        return 1
    fi
}

# A bench step: runs only while budget is left, bounded by the budget.
bench_step() {
    local log=$1 want=$2
    shift 2
    local l
    l=$(left)
    if [ "$l" -lt "$want" ]; then
        echo "skipped $log (only $l s of the budget left)" | tee -a "$logs/summary.txt"
        return 0
    fi
    local t0=$SECONDS
    if timeout "$l" "$@" >> "$logs/$log" 2>&1; then
        echo "ok     $log ($((SECONDS - t0)) s)" | tee -a "$logs/summary.txt"
    else
        echo "FAILED $log ($((SECONDS - t0)) s)" | tee -a "$logs/summary.txt"
        failed=$((failed + 1))
    fi
    save_logs
}

run() {
    logs=${3:-$dir/logs}
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
    tar -C "$exe" -xJf "$dir/bins.tar.xz" --strip-components=1
    {
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
        (ldd --version | head -1) || true
        find_nvrtc || true
        python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())' 2>&1 || true
    } | tee "$logs/gpu.txt"
    find_nvrtc > /dev/null
    : > "$logs/summary.txt"
    failed=0
    # Test binaries in parallel (separate processes; each one's tests in sequence).
    export -f run_test_binary
    if ! printf '%s\n' "$exe"/test-* | xargs -P "${GPU_TIER_JOBS:-6}" -I{} bash -c 'run_test_binary "$1" "$2"' _ {} "$logs"; then
        failed=$((failed + 1))
    fi
    save_logs
    # End to end on the bundled tiny model (the CLI's CUDA path, 2 samples).
    bench_step e2e.log 20 "$exe/fdm" inpaint assets/photos/dev_005.jpg --mask assets/masks/rect.png \
        -n 2 --seed 7 --device cuda --out "$logs/e2e" --save-tokens
    bench_step bench-cuda_ops.log 60 "$exe/bench-cuda_ops" --bench --warm-up-time 1 --measurement-time 2
    # The model and sampling benches hold CPU benches too: only their `cuda_` ones run here.
    if [ -d "$dir/photos" ]; then
        local label switches
        for label in defaults wide-conv-kernel-gradients; do
            switches=()
            [ "$label" = defaults ] || switches=(FDM_CONV_WIDE=1 FDM_CUBLAS_GRADIENTS=0)
            echo "== $label ${switches[*]}" >> "$logs/train-speed.log"
            bench_step train-speed.log 90 env "${switches[@]}" TRAIN_SPEED_STEPS="8 24 1 1" TRAIN_SPEED_LIMIT_S=30 \
                TRAIN_SPEED_OUT="$logs/train-speed/$label" FDM="$exe/fdm" scripts/train-speed.sh "$dir/photos" cuda
        done
    fi
    bench_step bench-models.log 60 "$exe/bench-models" --bench cuda_ --warm-up-time 1 --measurement-time 3
    bench_step bench-sampling.log 60 "$exe/bench-sampling" --bench cuda_sampling_pass --warm-up-time 1 --measurement-time 3
    # Where a bf16 paper-preset inpainting spends its time, per op and kernel (device time).
    bench_step profile.log 40 "$exe/fdm" profile --random-init paper --device cuda --precision bf16 \
        --json "$logs/profile_paper_bf16.json"
    bench_step profile_n4.log 40 "$exe/fdm" profile --random-init paper --device cuda --precision bf16 -n 4 \
        --json "$logs/profile_paper_bf16_n4.json"
    if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        bench_step torch_ops.log 30 python3 benches/reference/torch_ops.py --json "$logs/torch_ops.json"
        bench_step torch_ops_tf32.log 30 python3 benches/reference/torch_ops.py --tf32 --json "$logs/torch_ops_tf32.json"
        # The sampling loop in eager PyTorch, paper preset, 302 passes (cuda_inpaint_paper_30pct_*).
        local flags
        for flags in "--samples 1" "--samples 1 --bf16" "--samples 4 --bf16"; do
            # shellcheck disable=SC2086
            bench_step torch_sampler.log 30 python3 benches/reference/torch_sampler.py --device cuda --preset paper $flags \
                --runs 2 --json "$logs/torch_sampler.json"
        done
    fi
    # bf16 first: the issue's targets are for it; the f32 pair (n1 and n1_bf16 again) last.
    bench_step bench-sampling.log 60 "$exe/bench-sampling" --bench cuda_inpaint_paper_30pct_n1_bf16 --warm-up-time 1 --measurement-time 3
    bench_step bench-sampling.log 60 "$exe/bench-sampling" --bench cuda_inpaint_paper_30pct_n4_bf16 --warm-up-time 1 --measurement-time 3
    # Four samples with the opt-in bf16-input attention kernel (q, k, v cast once, cp.async +
    # ldmatrix, 32 queries per warp): to make it the default if it wins.
    bench_step bench-sampling-bf16-inputs.log 60 env FDM_ATTENTION_BF16_INPUTS=1 "$exe/bench-sampling" \
        --bench cuda_inpaint_paper_30pct_n4_bf16 --warm-up-time 1 --measurement-time 3
    # The same pair without cuBLASLt's bias epilogue (bias rows), then the four samples without
    # the attention's 128-query blocks: what each default buys.
    local n
    for n in n1 n4; do
        bench_step bench-sampling-no-cublaslt.log 60 env FDM_CUBLASLT=0 "$exe/bench-sampling" \
            --bench "cuda_inpaint_paper_30pct_${n}_bf16" --warm-up-time 1 --measurement-time 3
    done
    bench_step bench-sampling-no-wide.log 60 env FDM_ATTENTION_WIDE=0 "$exe/bench-sampling" \
        --bench cuda_inpaint_paper_30pct_n4_bf16 --warm-up-time 1 --measurement-time 3
    bench_step bench-sampling.log 60 "$exe/bench-sampling" --bench cuda_inpaint_paper_30pct_n1 --warm-up-time 1 --measurement-time 3
    echo "$failed failures; logs in $logs" | tee -a "$logs/summary.txt"
    save_logs
    [ "$failed" -eq 0 ]
}

case "$cmd" in
    pack) pack ;;
    run) run "$@" ;;
    *) echo "usage: scripts/gpu-tier.sh pack [DIR] | run [DIR] [LOGDIR]" >&2; exit 2 ;;
esac
