#!/usr/bin/env python3
"""The shapes of `cargo bench --bench ops` timed in numpy (OpenBLAS), for the ratios in
BENCHMARKS.md. GEMM: np.matmul. conv2d: im2col + one matmul (what a BLAS-backed framework does on
the CPU). attention: per head Q K^T, softmax, P V with matmul. Prints GFLOP/s (2 per MAC), best
of N runs after a warm-up. (JAX is not timed: it is not installed here.)
Run: python3 benches/reference/cpu_reference.py [runs]"""
import sys
import time

import numpy as np

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
rng = np.random.default_rng(0)


def best(f):
    f()
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def report(name, flops, secs):
    print(f"{name:40s} {secs * 1e3:9.2f} ms {flops / secs / 1e9:8.1f} GFLOP/s")


def gemm(m, n, k):
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    report(f"numpy_gemm_f32_{m}x{n}x{k}", 2 * m * n * k, best(lambda: a @ b))


def conv3x3(c_in, c_out, h, w):
    x = rng.standard_normal((c_in, h + 2, w + 2), dtype=np.float32)
    wt = rng.standard_normal((c_out, c_in * 9), dtype=np.float32)

    def run():
        cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # C,H,W,3,3
        cols = np.ascontiguousarray(cols.transpose(0, 3, 4, 1, 2)).reshape(c_in * 9, h * w)
        return wt @ cols

    report(f"numpy_conv2d_f32_{c_in}x{h}x{w}_k3", 2 * c_out * c_in * 9 * h * w, best(run))


def attention(heads, seq, dim):
    q = rng.standard_normal((heads, seq, dim), dtype=np.float32)
    k = rng.standard_normal((heads, seq, dim), dtype=np.float32)
    v = rng.standard_normal((heads, seq, dim), dtype=np.float32)

    def run():
        s = (q @ k.transpose(0, 2, 1)) * np.float32(dim ** -0.5)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        return s @ v

    report(f"numpy_attention_f32_{heads}x{seq}x{dim}", 2 * 2 * heads * seq * seq * dim, best(run))


if __name__ == "__main__":
    print(f"numpy {np.__version__}, best of {RUNS}")
    for m, n, k in [(1024, 1024, 1024), (1024, 512, 512), (1024, 2048, 512), (1024, 512, 2048), (1024, 1536, 512)]:
        gemm(m, n, k)
    conv3x3(256, 256, 32, 32)
    conv3x3(64, 64, 256, 256)
    attention(8, 1024, 64)
