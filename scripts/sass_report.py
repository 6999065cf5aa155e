#!/usr/bin/env python3
"""Static SASS report of the CUDA kernels, for work on them without a GPU.

Compiles each kernels/<name>.cu (with kernels/common.cuh prepended, as src/cuda/module.rs does)
to an sm_90 CUBIN with the NVRTC library, disassembles it with cuobjdump + nvdisasm, and prints
per kernel the number of SASS instructions, the size of its largest loop (the instructions
between a backward branch and its target: the hot loop of a tiled kernel) and the counts of a
few instruction classes inside that loop (tensor-core MMAs, shared loads/stores, conversions,
special-function calls). Fewer instructions per loop trip is a measure that needs no GPU; time
still has to be measured on one (BENCHMARKS.md).

Set-up (no GPU or CUDA toolkit needed; the wheels are on PyPI):
  python3 -m venv /tmp/sass-venv
  /tmp/sass-venv/bin/pip install "nvidia-cuda-nvrtc==13.0.*" "nvidia-cuda-crt==13.0.*" \
      "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cuobjdump==13.2.*" nvidia-cuda-nvdisasm
  /tmp/sass-venv/bin/python scripts/sass_report.py [attention_tc gemm_tc ...]
(nvdisasm is found through PATH, or its wheel's bin folder in the same venv.)
"""
import ctypes
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["HMMA", "LDS", "STS", "LDG", "STG", "F2FP", "MUFU", "BAR"]


def cu13():
    import nvidia  # the NVRTC wheels' namespace package

    return os.path.join(list(nvidia.__path__)[0], "cu13")


def tool(name):
    for d in os.environ.get("PATH", "").split(os.pathsep) + [os.path.join(cu13(), "bin")]:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    sys.exit(f"{name} not found: install its wheel (see the header of this script)")


def cubin(module):
    lib = ctypes.CDLL(os.path.join(cu13(), "lib", "libnvrtc.so.13"))
    src = open(os.path.join(ROOT, "kernels", "common.cuh")).read() + "\n"
    src += open(os.path.join(ROOT, "kernels", module + ".cu")).read()
    prog = ctypes.c_void_p()
    if lib.nvrtcCreateProgram(ctypes.byref(prog), src.encode(), f"{module}.cu".encode(), 0, None, None):
        sys.exit("nvrtcCreateProgram failed")
    opts = [b"--gpu-architecture=sm_90", b"-I" + os.path.join(cu13(), "include").encode()]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    if rc:
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        sys.exit(f"kernels/{module}.cu does not compile:\n{log.value.decode()}")
    lib.nvrtcGetCUBINSize(prog, ctypes.byref(size))
    out = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetCUBIN(prog, out)
    return out.raw


def functions(sass):
    """{kernel: [(address, opcode, text)]} from cuobjdump -sass output."""
    funcs, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s+Function : (\S+)", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m and cur is not None:
            text = m.group(2).strip()
            op = re.sub(r"^@!?U?P\w+\s+", "", text).split()[0]
            cur.append((int(m.group(1), 16), op.split(".")[0], text))
    return funcs


def largest_loop(ins):
    """(start, end) indices of the widest backward branch's range, or None."""
    index = {addr: i for i, (addr, _, _) in enumerate(ins)}
    best = None
    for i, (addr, op, text) in enumerate(ins):
        m = re.search(r"BRA (0x[0-9a-f]+)", text)
        if op == "BRA" and m and int(m.group(1), 16) < addr and int(m.group(1), 16) in index:
            j = index[int(m.group(1), 16)]
            if best is None or i - j > best[1] - best[0]:
                best = (j, i)
    return best


def report(module):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, module + ".cubin")
        open(path, "wb").write(cubin(module))
        env = dict(os.environ, PATH=os.path.dirname(tool("nvdisasm")) + os.pathsep + os.environ.get("PATH", ""))
        sass = subprocess.run([tool("cuobjdump"), "-sass", path], env=env, check=True, capture_output=True, text=True).stdout
    for name, ins in sorted(functions(sass).items()):
        loop = largest_loop(ins)
        body = ins[loop[0] : loop[1] + 1] if loop else []
        counts = " ".join(f"{c} {sum(op == c for _, op, _ in body)}" for c in CLASSES)
        trip = f"loop {len(body):5d} ({counts})" if body else "no loop"
        print(f"{module:14s} {name:36s} {len(ins):6d} instructions, {trip}")


if __name__ == "__main__":
    known = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, "kernels")) if f.endswith(".cu"))
    mods = sys.argv[1:] or known
    for m in mods:
        if m not in known:
            sys.exit(f"no kernels/{m}.cu; the kernel files are: {' '.join(known)}")
        report(m)
