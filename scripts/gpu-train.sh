#!/usr/bin/env bash
# Training on a GPU machine that has CUDA (driver + libnvrtc) but no Rust toolchain, within a
# fixed wall-clock budget: how the bundled tiny transformer got its GPU phase (assets/weights/
# TRAINING.md).
#
#   scripts/gpu-train.sh pack DATA CONFIG [DIR]
#       on a machine with Rust: builds `fdm` and puts it (stripped, xz), the photos of DATA and
#       CONFIG into DIR (default gpu-train/). With PIL importable by python3 (or by $PYTHON) the
#       photos are re-encoded as JPEG quality 88, which keeps ~850 pool tiles under ~15 MiB (the
#       GPU machine receives the working tree and carried folders up to 64 MiB in all); without it
#       they are copied as they are.
#   scripts/gpu-train.sh run SECONDS PHASE INIT [DIR] [ARCHIVE]
#       on the GPU machine, from a copy of the repository: `fdm train PHASE --device cuda --init
#       INIT --config DIR/config.json` for SECONDS, then SIGINT (the run writes its checkpoint and
#       stops); the loss-log length and GPU utilisation every 15 s; the last checkpoint and
#       losses.csv go to ARCHIVE (a .tgz; default DIR/result.tgz).
set -euo pipefail
cmd=${1:-}
# find_nvrtc: the machine's own libnvrtc.so.13 on LD_LIBRARY_PATH.
. "$(dirname "$0")/gpu-nvrtc.sh"

pack() {
    local data=$1 config=$2 dir=${3:-gpu-train}
    [ -d "$data" ] || { echo "no photo folder $data" >&2; exit 2; }
    [ -f "$config" ] || { echo "no config file $config" >&2; exit 2; }
    rm -rf "$dir" && mkdir -p "$dir/photos"
    cargo build --release --quiet
    local stage
    stage=$(mktemp -d)
    cp target/release/fdm "$stage/fdm" && strip "$stage/fdm"
    xz -9 -c "$stage/fdm" > "$dir/fdm.xz"
    rm -rf "$stage"
    cp "$config" "$dir/config.json"
    local py=${PYTHON:-python3}
    if "$py" -c 'import PIL' 2>/dev/null; then
        "$py" - "$data" "$dir/photos" <<'EOF'
import os, sys
from PIL import Image
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    try:
        im = Image.open(os.path.join(src, name)).convert("RGB")
    except OSError:
        continue
    im.save(os.path.join(dst, os.path.splitext(name)[0] + ".jpg"), quality=88, optimize=True)
EOF
    else
        cp -L "$data"/* "$dir/photos/"
    fi
    echo "packed fdm, $(ls "$dir/photos" | wc -l) photos ($(du -sh "$dir/photos" | cut -f1)) and the config into $dir"
}

run() {
    local seconds=$1 phase=$2 init=$3 dir=${4:-gpu-train}
    local archive=${5:-$dir/result.tgz}
    local bin=/tmp/fdm-gpu-train/fdm out=/tmp/fdm-gpu-train/run
    rm -rf /tmp/fdm-gpu-train && mkdir -p /tmp/fdm-gpu-train
    xz -dc "$dir/fdm.xz" > "$bin" && chmod +x "$bin"
    find_nvrtc
    # `timeout -s INT` signals the run and then its process group: the trainer takes the pair as
    # one Ctrl-C (stop after this step, write the checkpoint).
    timeout -s INT "$seconds" "$bin" train "$phase" --data "$dir/photos" --preset tiny \
        --config "$dir/config.json" --init "$init" --out "$out" --device cuda --no-progress \
        > "$dir/train.log" 2>&1 &
    local pid=$! t0=$SECONDS
    while kill -0 "$pid" 2>/dev/null; do
        sleep 15
        echo "t=$((SECONDS - t0)) s steps=$(($(wc -l < "$out/losses.csv" 2>/dev/null || echo 1) - 1))" \
            "last=$(tail -1 "$out/losses.csv" 2>/dev/null)" \
            "gpu=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader 2>/dev/null || echo '?')"
    done
    wait "$pid" || true
    tail -4 "$dir/train.log"
    local last
    last=$(ls -d "$out"/ckpt-* 2>/dev/null | sort | tail -1)
    [ -n "$last" ] || { echo "no checkpoint was written" >&2; exit 1; }
    tar -C "$out" -czf "$archive" losses.csv "$(basename "$last")"
    echo "checkpoint $(basename "$last") and losses.csv -> $archive"
}

case "$cmd" in
    pack) shift; pack "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: scripts/gpu-train.sh pack DATA CONFIG [DIR] | run SECONDS PHASE INIT [DIR] [ARCHIVE]" >&2; exit 2 ;;
esac
