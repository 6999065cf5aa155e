#!/usr/bin/env python3
"""The 1024^3 single-precision GEMM in numpy (OpenBLAS, all cores unless OPENBLAS_NUM_THREADS
says otherwise), printed like `cargo run --release --example gemm_conv_timing -- SECS g`: best
call, mean over the run, and FLOPs per second of process CPU time. Alternating short runs of the
two on a shared machine gives ratios that drifting load affects less (BENCHMARKS.md).
Run: python3 benches/reference/numpy_gemm_timing.py [seconds, default 3]"""
import sys
import time

import numpy as np

secs = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
rng = np.random.default_rng(0)
a = rng.standard_normal((1024, 1024), dtype=np.float32)
b = rng.standard_normal((1024, 1024), dtype=np.float32)
flops = 2 * 1024**3
a @ b
t0, c0, runs, best = time.perf_counter(), time.process_time(), 0, float("inf")
while time.perf_counter() - t0 < secs:
    t = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t)
    runs += 1
wall, cpu = time.perf_counter() - t0, time.process_time() - c0
print(f"{'numpy gemm 1024^3':28} best {flops / best / 1e9:7.1f} GF/s  mean {flops * runs / wall / 1e9:7.1f} GF/s  "
      f"cpu {flops * runs / cpu / 1e9:7.1f} GF/s/core-sec  ({runs} runs)")
