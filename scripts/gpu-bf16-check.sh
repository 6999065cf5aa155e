#!/usr/bin/env bash
# The short GPU check of the bf16 inference path, for a GPU machine with CUDA but no Rust, from
# binaries packed by `scripts/gpu-tier.sh pack` (a subset of what `gpu-tier.sh run` does, for a
# session with little device time left):
#   1. the test binaries of that path with FDM_REQUIRE_CUDA=1 (tensor-core attention, the f32
#      attention kernels' output strides, conv2d's split-K, cuBLAS, the bf16 GEMM kernels and
#      paired conversion, the bf16 model against the CPU, dispatch, sampler, codebook search,
#      top-K sampling, PTX loading);
#   2. its benches: the attention, bf16 linear, codebook, top-K and conv2d rows of cuda_ops, the
#      paper-preset transformer pass and sampling pass in bf16, whole paper-preset inpaintings
#      (30 % holes) with 1 and 4 samples, and `fdm profile` of one bf16 inpainting;
#   3. the PyTorch references of the same shapes on the same card (when torch sees the GPU).
#
#   scripts/gpu-bf16-check.sh [DIR] [LOGDIR]     DIR: the packed binaries (default gpu-tier)
set -uo pipefail
dir=${1:-gpu-tier}
logs=${2:-/tmp/gpu-bf16-check}
. "$(dirname "$0")/gpu-nvrtc.sh"
mkdir -p "$logs"
exe=$(mktemp -d)
tar -C "$exe" -xJf "$dir/bins.tar.xz" --strip-components=1
src=$(cat "$dir/source-path")
if [ ! -e "$src" ]; then mkdir -p "$(dirname "$src")" && ln -s "$PWD" "$src"; fi
{ nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; find_nvrtc; } | tee "$logs/gpu.txt"

failed=0
for t in cuda_emu_attention_tc cuda_emu_attention cuda_emu_conv2d cuda_blas cuda_emu_gemm_tc model_bf16 cuda_dispatch_bf16 cuda_sampler cuda_emu_codebook cuda_emu_sampling kernels_compile; do
    if FDM_REQUIRE_CUDA=1 timeout 120 "$exe/test-$t" --test-threads=1 --skip emu:: --skip inpaint_cli_with_bf16_precision_cpu > "$logs/$t.log" 2>&1; then
        echo "ok     $t: $(grep -h '^test result' "$logs/$t.log" | tail -1)"
    else
        echo "FAILED $t: $(grep -h '^test result\|panicked' "$logs/$t.log" | head -3 | tr '\n' ' ')"
        failed=$((failed + 1))
    fi
done

short="--warm-up-time 1 --measurement-time 2"
timeout 100 "$exe/bench-cuda_ops" --bench 'attention|linear_cublas_bf16|linear_bf16_1024|codebook|topk|conv2d' $short > "$logs/ops.log" 2>&1
timeout 60 "$exe/bench-models" --bench cuda_transformer_pass_paper_bf16 $short > "$logs/models.log" 2>&1
timeout 60 "$exe/bench-sampling" --bench cuda_sampling_pass_paper_bf16 $short > "$logs/pass.log" 2>&1
timeout 60 "$exe/bench-sampling" --bench cuda_inpaint_paper_30pct_n1_bf16 --warm-up-time 1 --measurement-time 3 > "$logs/n1.log" 2>&1
timeout 90 "$exe/bench-sampling" --bench cuda_inpaint_paper_30pct_n4_bf16 --warm-up-time 1 --measurement-time 3 > "$logs/n4.log" 2>&1
timeout 40 "$exe/fdm" profile --random-init paper --device cuda --precision bf16 --json "$logs/profile.json" > "$logs/profile.log" 2>&1
grep -h -B1 "time:" "$logs"/ops.log "$logs"/models.log "$logs"/pass.log "$logs"/n1.log "$logs"/n4.log | grep -v '^--'

if python3 -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
    timeout 40 python3 benches/reference/torch_ops.py > "$logs/torch_ops.log" 2>&1
    grep -h "attention\|linear_bf16\|codebook\|topk\|cdist\|conv2d" "$logs/torch_ops.log"
    for flags in "--samples 1 --bf16" "--samples 4 --bf16"; do
        # shellcheck disable=SC2086
        timeout 60 python3 benches/reference/torch_sampler.py --device cuda --preset paper $flags --runs 2 >> "$logs/torch_sampler.log" 2>&1
    done
    grep -h "fill of" "$logs/torch_sampler.log"
fi
echo "$failed test binaries failed; logs in $logs"
[ "$failed" -eq 0 ]
