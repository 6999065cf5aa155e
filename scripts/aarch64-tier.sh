#!/usr/bin/env bash
# The 64-bit ARM tier: the CPU kernels' tests built for aarch64-unknown-linux-gnu and run under
# qemu's user-mode emulator, so the NEON GEMM micro-kernel and vector exp (src/cpu/ops/gemm_neon.rs,
# vmath_neon.rs), which no x86 build compiles, are checked on every CI run: against the
# reference loops and, bit for bit, against the fused recipe the AVX2 kernels follow. The
# convolution tests cover the paths where the NEON kernel reads a packed copy of A rows the
# AVX2 kernel reads in place (gemm_kernel::compute_tile_ab; about 2.5 minutes of the tier).
#
#   scripts/aarch64-tier.sh [TEST ...]   default tests: vmath gemm gemm_rows attention unary linear
#                                        conv2d conv_transpose2d
#
# Set-up, best effort: `rustup target add aarch64-unknown-linux-gnu`, and where the cross tools
# are missing and this is a Debian/Ubuntu machine run as root, `apt-get install` of the cross
# gcc/g++ and qemu-user. If set-up fails (offline, no rustup, not root) the tier prints SKIP and
# exits 0; a failing test exits non-zero.
#
# Timings under qemu say nothing about ARM hardware (qemu emulates fused multiply-adds in
# software); this tier checks results only.
#
# ARM_INPAINT=1 also runs `fdm inpaint` (bundled model, rect mask, 2 samples, seed 1, with
# --save-tokens) under qemu and compares every output byte with the host build's: about 15
# minutes on a 2-core machine, so it is not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
target=aarch64-unknown-linux-gnu
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(vmath gemm gemm_rows attention unary linear conv2d conv_transpose2d)

skip() {
    echo "SKIP (aarch64 tier: $1)"
    exit 0
}

have_tools() {
    command -v aarch64-linux-gnu-gcc > /dev/null && command -v aarch64-linux-gnu-g++ > /dev/null &&
        command -v qemu-aarch64 > /dev/null
}

setup() {
    command -v rustup > /dev/null || skip "no rustup to add the $target standard library"
    if ! rustup target list --installed | grep -qx "$target"; then
        rustup target add "$target" > /dev/null 2>&1 || skip "rustup target add $target failed (offline?)"
    fi
    if ! have_tools; then
        if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
            echo "installing the aarch64 cross compilers and qemu-user (apt-get)"
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
                gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; } > /dev/null 2>&1 ||
                skip "apt-get install of the cross tools failed"
        fi
        have_tools || skip "no aarch64-linux-gnu-gcc/g++ or qemu-aarch64 (Debian: gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user)"
    fi
}

setup
sysroot=/usr/aarch64-linux-gnu
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $sysroot"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
echo "aarch64 tier: ${tests[*]} under qemu-aarch64"
cargo test --release --target "$target" "${args[@]}"

if [ "${ARM_INPAINT:-0}" = 1 ]; then
    cargo build --release --quiet
    cargo build --release --quiet --target "$target"
    out=$(mktemp -d)
    flags=(inpaint assets/photos/dev_005.jpg --mask assets/masks/rect.png -n 2 --seed 1 --save-tokens)
    target/release/fdm "${flags[@]}" --out "$out/host" > /dev/null
    qemu-aarch64 -L "$sysroot" "target/$target/release/fdm" "${flags[@]}" --out "$out/arm" > /dev/null
    diff -r "$out/host" "$out/arm" && echo "aarch64 inpaint: every output byte equals the host build's"
    rm -rf "$out"
fi
