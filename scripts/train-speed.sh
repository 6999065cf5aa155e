#!/usr/bin/env bash
# Training speed of the paper preset, phase by phase: `fdm train` with the configs of
# benches/train-speed/ (the paper preset's own, at the official batch sizes of spec §6.1, with
# every loss term and the discriminator on from step 0, so each step is a full one; checked by
# tests/train_parts.rs), VGG-16 perceptual and style terms, 1b, 2 and 3 from the 1a run's weights.
# Prints each phase's summary line; its "after the first step" rate leaves out the start-up
# (kernel compilation, allocation) and is the figure BENCHMARKS.md reports.
#
#   scripts/train-speed.sh DATA [DEVICE]
#       DATA: a folder of at least 10 photos (one batch of the codec phases); DEVICE: cuda
#       (default) or cpu. On a GPU machine without Rust, point FDM at a packed `fdm`.
#   Environment: FDM (default target/release/fdm), TRAIN_SPEED_STEPS (steps of 1a, 1b, 2, 3;
#   default "16 40 30 16"), TRAIN_SPEED_LIMIT_S (seconds per phase before it is interrupted with
#   a checkpoint; default 40), TRAIN_SPEED_OUT (default /tmp/fdm-train-speed), VGG (default
#   assets/weights/vgg16_lpips.safetensors).
set -euo pipefail
data=${1:?usage: scripts/train-speed.sh DATA [DEVICE]}
device=${2:-cuda}
fdm=${FDM:-target/release/fdm}
read -r -a steps <<< "${TRAIN_SPEED_STEPS:-16 40 30 16}"
limit=${TRAIN_SPEED_LIMIT_S:-40}
out=${TRAIN_SPEED_OUT:-/tmp/fdm-train-speed}
vgg=${VGG:-assets/weights/vgg16_lpips.safetensors}
configs=$(dirname "$0")/../benches/train-speed
[ -x "$fdm" ] || { echo "no fdm binary at $fdm (cargo build --release, or set FDM)" >&2; exit 2; }
[ -d "$data" ] || { echo "no photo folder $data" >&2; exit 2; }
[ "${#steps[@]}" -eq 4 ] || { echo "TRAIN_SPEED_STEPS needs four step counts (1a 1b 2 3)" >&2; exit 2; }
if [ "$device" = cuda ]; then
    # find_nvrtc: the machine's own libnvrtc.so.13 (and cuBLAS) on LD_LIBRARY_PATH.
    . "$(dirname "$0")/gpu-nvrtc.sh"
    find_nvrtc > /dev/null
fi
rm -rf "$out"

# train PHASE STEPS [ARGS...]: one timed run, interrupted (with a checkpoint) past the limit.
train() {
    local phase=$1 n=$2 rc=0
    shift 2
    timeout -s INT "$limit" "$fdm" train "$phase" --data "$data" --config "$configs/paper-$phase.json" \
        --vgg "$vgg" --device "$device" --steps "$n" --out "$out/$phase" "$@" > "$out.$phase.log" 2>&1 || rc=$?
    echo "$phase (exit $rc): $(grep -h 'steps in' "$out.$phase.log" || tail -n 2 "$out.$phase.log")"
}

mkdir -p "$(dirname "$out")"
train phase1a "${steps[0]}"
# The 1a weights, or its last checkpoint's where the limit stopped it early.
init=$out/phase1a/phase1a.safetensors
if [ ! -f "$init" ]; then
    init=$(ls -d "$out"/phase1a/ckpt-*/model.safetensors 2>/dev/null | tail -n 1)
fi
[ -n "$init" ] || { echo "phase 1a wrote no weights: see $out.phase1a.log" >&2; exit 1; }
train phase1b "${steps[1]}" --init "$init"
train phase2 "${steps[2]}" --init "$init"
train phase3 "${steps[3]}" --init "$init"
