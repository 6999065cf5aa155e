# Sourced by scripts/gpu-tier.sh and scripts/gpu-train.sh on a GPU machine with no Rust:
# find_nvrtc puts the folder of the machine's own libnvrtc.so.13 (the torch venv's nvidia wheels,
# else the CUDA toolkit) first on LD_LIBRARY_PATH and says which, or that none was found; then the
# same for libcublas.so.13 (the Linear GEMMs' fast path; without it they run on the hand-written
# kernels), usually the same folder.
cuda_lib_dirs() {
    python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null
    echo /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib
}

# find_cuda_lib LIB LABEL: the first folder of cuda_lib_dirs holding LIB, put on LD_LIBRARY_PATH
# (unless already there).
find_cuda_lib() {
    local d
    for d in $(cuda_lib_dirs); do
        if [ -e "$d/$1" ]; then
            case ":${LD_LIBRARY_PATH:-}:" in
                *":$d:"*) ;;
                *) export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
            esac
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
}
