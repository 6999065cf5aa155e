#!/usr/bin/env python3
"""The shapes of `cargo bench --bench ops` timed in numpy (OpenBLAS) and, where it is installed,
JAX on the CPU (XLA), for the ratios in BENCHMARKS.md. numpy: GEMM np.matmul; conv2d im2col + one
matmul (what a BLAS-backed framework does on the CPU); attention per head Q K^T, softmax, P V with
matmul. JAX: the same computations jitted (jnp.matmul, lax.conv_general_dilated in NCHW/OIHW,
jax.nn.softmax), timed with block_until_ready. Prints GFLOP/s (2 per MAC) of the best and of the
median of N runs after a warm-up (which also compiles the JAX functions); the median is the one
to set against criterion's estimate, which is a mean, not a minimum. Both use every core by
default.
Run: python3 benches/reference/cpu_reference.py [runs]
(JAX, e.g. in a venv: python3 -m venv jax-venv && jax-venv/bin/pip install jax numpy, then run the
script with jax-venv/bin/python.)"""
import sys
import time

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError:  # numpy only
    jax = None

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
rng = np.random.default_rng(0)


def best(f):
    """(best, median) seconds of RUNS calls of f after a warm-up call."""
    f()
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0], times[len(times) // 2]


def report(name, flops, secs):
    fastest, median = secs
    print(f"{name:40s} {fastest * 1e3:9.2f} ms {flops / fastest / 1e9:8.1f} GFLOP/s   median {flops / median / 1e9:8.1f} GFLOP/s")


def jax_best(f, *args):
    """(best, median) time of the jitted f on device-resident args (the first call compiles)."""
    f = jax.jit(f)
    args = [jax.device_put(a) for a in args]
    return best(lambda: f(*args).block_until_ready())


def gemm(m, n, k):
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    report(f"numpy_gemm_f32_{m}x{n}x{k}", 2 * m * n * k, best(lambda: a @ b))
    if jax:
        report(f"jax_gemm_f32_{m}x{n}x{k}", 2 * m * n * k, jax_best(jnp.matmul, a, b))


def conv3x3(c_in, c_out, h, w):
    x = rng.standard_normal((c_in, h + 2, w + 2), dtype=np.float32)
    wt = rng.standard_normal((c_out, c_in * 9), dtype=np.float32)

    def run():
        cols = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(1, 2))  # C,H,W,3,3
        cols = np.ascontiguousarray(cols.transpose(0, 3, 4, 1, 2)).reshape(c_in * 9, h * w)
        return wt @ cols

    flops = 2 * c_out * c_in * 9 * h * w
    report(f"numpy_conv2d_f32_{c_in}x{h}x{w}_k3", flops, best(run))
    if jax:
        xj = rng.standard_normal((1, c_in, h, w), dtype=np.float32)
        wj = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)

        def conv(x, w):
            return jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=("NCHW", "OIHW", "NCHW"))

        report(f"jax_conv2d_f32_{c_in}x{h}x{w}_k3", flops, jax_best(conv, xj, wj))


def attention(heads, seq, dim):
    q = rng.standard_normal((heads, seq, dim), dtype=np.float32)
    k = rng.standard_normal((heads, seq, dim), dtype=np.float32)
    v = rng.standard_normal((heads, seq, dim), dtype=np.float32)

    def run():
        s = (q @ k.transpose(0, 2, 1)) * np.float32(dim ** -0.5)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        return s @ v

    flops = 2 * 2 * heads * seq * seq * dim
    report(f"numpy_attention_f32_{heads}x{seq}x{dim}", flops, best(run))
    if jax:

        def attn(q, k, v):
            s = jnp.matmul(q, k.transpose(0, 2, 1)) * np.float32(dim ** -0.5)
            return jnp.matmul(jax.nn.softmax(s, axis=-1), v)

        report(f"jax_attention_f32_{heads}x{seq}x{dim}", flops, jax_best(attn, q, k, v))


if __name__ == "__main__":
    print(f"numpy {np.__version__}" + (f", jax {jax.__version__} on {jax.devices()}" if jax else ", jax not installed") + f", best and median of {RUNS}")
    for m, n, k in [(1024, 1024, 1024), (1024, 512, 512), (1024, 2048, 512), (1024, 512, 2048), (1024, 1536, 512)]:
        gemm(m, n, k)
    conv3x3(256, 256, 32, 32)
    conv3x3(64, 64, 256, 256)
    attention(8, 1024, 64)
