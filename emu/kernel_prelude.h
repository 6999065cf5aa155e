// kernel_prelude.h: included by build.rs inside the namespace of each emulated kernel file, before
// common.cuh and the kernel source, so these definitions hide the global ones for kernel code only.
#pragma once

// fmaf: x86-64 without -mfma has no fused multiply-add instruction, and libm's fmaf is then a
// software routine that dominated emulator run time (65% of a GEMM-like kernel). Kernels get an
// unfused multiply-add instead; it differs from the GPU's fused result by at most one rounding,
// far inside every test tolerance. (Equal inputs still give equal results, which the tie rules of
// the argmin/top-K kernels rely on.)
static inline float fmaf(float a, float b, float c) { return a * b + c; }
