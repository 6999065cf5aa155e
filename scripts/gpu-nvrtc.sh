# Sourced by scripts/gpu-tier.sh and scripts/gpu-train.sh on a GPU machine with no Rust:
# find_nvrtc puts the folder of the machine's own libnvrtc.so.13 (the torch venv's nvidia wheels,
# else the CUDA toolkit) first on LD_LIBRARY_PATH and says which, or that none was found.
find_nvrtc() {
    local d
    for d in $(python3 -c 'import nvidia, os; [print(os.path.join(p, "cu13", "lib")) for p in nvidia.__path__]' 2>/dev/null) \
        /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
        if [ -e "$d/libnvrtc.so.13" ]; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            echo "libnvrtc: $d"
            return 0
        fi
    done
    echo "libnvrtc.so.13 not found"
}
