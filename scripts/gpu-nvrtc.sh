# Sourced by scripts/gpu-tier.sh and scripts/gpu-train.sh on a GPU machine with no Rust:
# find_nvrtc puts the folder of the machine's own libnvrtc.so.13 (the torch venv's nvidia wheels,
# else the CUDA toolkit) first on LD_LIBRARY_PATH and says which, or that none was found; then the
# same for libcublas.so.13 (the Linear GEMMs' fast path; without it they run on the hand-written
# kernels) and libcublasLt.so.13 (the bf16 biases' epilogue), usually the same folder; then NCCL (find_nccl).
cuda_lib_dirs() {
    python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null
    echo /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib
}

# prepend_lib_path DIR: DIR first on LD_LIBRARY_PATH (unless already there).
prepend_lib_path() {
    case ":${LD_LIBRARY_PATH:-}:" in
        *":$1:"*) ;;
        *) export LD_LIBRARY_PATH="$1${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
    esac
}

# find_cuda_lib LIB LABEL: the first folder of cuda_lib_dirs holding LIB, put on LD_LIBRARY_PATH.
find_cuda_lib() {
    local d
    for d in $(cuda_lib_dirs); do
        if [ -e "$d/$1" ]; then
            prepend_lib_path "$d"
            echo "$2: $d"
            return 0
        fi
    done
    echo "$1 not found"
    return 1
}

# Never fails (callers run under `set -e`): a missing library is a line of the report.
find_nvrtc() {
    find_cuda_lib libnvrtc.so.13 libnvrtc || true
    find_cuda_lib libcublas.so.13 libcublas || true
    find_cuda_lib libcublasLt.so.13 libcublasLt || true
    find_nccl || true
}

# find_nccl: NCCL 2 for `--gpus N` and tests/cuda_nccl.rs. Its wheel (torch's nvidia-nccl) and
# the distributions install libnccl.so.2, a name cudarc does not look for (it tries libnccl.so
# and libnccl.so.{13,12,11,10,9,1}), so a libnccl.so link to it goes into a folder put on
# LD_LIBRARY_PATH. Where found, FDM_REQUIRE_NCCL=1 makes the NCCL test fail rather than skip.
find_nccl() {
    local d lib=""
    for d in $(python3 -c 'import nvidia; [print(p) for p in nvidia.__path__]' 2>/dev/null) \
        /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64; do
        lib=$(find "$d" -name libnccl.so.2 2>/dev/null | head -1)
        [ -n "$lib" ] && break
    done
    if [ -z "$lib" ]; then
        echo "libnccl.so.2 not found"
        return 1
    fi
    local links=/tmp/fdm-nccl-lib
    mkdir -p "$links" && ln -sf "$lib" "$links/libnccl.so"
    prepend_lib_path "$links"
    export FDM_REQUIRE_NCCL=1
    echo "libnccl: $lib"
}
