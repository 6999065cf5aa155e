//! Vectorised element kernels shared by the CPU fast paths (the attention softmax, GELU2):
//! exp over whole slices and down the columns of `[rows][16]` score panels, 8 lanes at a time
//! with AVX2 + FMA where the CPU has them, 4 with NEON on 64-bit ARM (`vmath_neon.rs`, the same
//! bits), plain loops with `f32::exp` otherwise. Not ops of
//! their own: no `_ref` twin; each caller's `_ref` is the oracle its tests compare against, and
//! `tests/vmath.rs` checks these against f64.
//!
//! The vector exp is the Cephes `expf` scheme (`cephes`): `x = n ln2 + r` with `n = round(x log2 e)` and
//! `ln2` split in two so `r` (|r| <= ln2/2) is exact to f32 rounding, a degree-5 polynomial
//! for `(exp(r) - 1 - r) / r^2`, then a scale by `2^n` built in the exponent bits. Its
//! relative error is about 1 ulp, well inside the 1e-5 tolerance the callers are held to.
//! Arguments are clamped to [-87.33, 88]: below the smallest normal's log the result is
//! ~1.2e-38 instead of a denormal or 0 (an absolute error under 1.2e-38); above 88 it
//! saturates at e^88 ~ 1.65e38 instead of overflowing (softmax arguments are <= 0; GELU2 only
//! gets there for x < -51.7, where it returns ~x/1.65e38 instead of -0). NaN stays NaN.

use super::gemm_kernel::MicroKernel;
#[cfg(target_arch = "aarch64")]
use super::vmath_neon as neon;

/// Which vector kernels this CPU runs (checked at run time, so one binary serves all CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    /// 8 lanes, AVX2 + FMA (x86-64).
    Avx2Fma,
    /// 4 lanes, NEON (aarch64; `vmath_neon.rs`), the same bits per lane as AVX2.
    Neon,
    /// Plain loops with `f32::exp` (other CPUs): within 1e-5, not the same bits.
    None,
}

/// The vector kernels in use here: the GEMM's choice (`MicroKernel::detect`), which needs the
/// same instructions.
pub fn simd() -> Simd {
    match MicroKernel::detect() {
        MicroKernel::Avx2Fma => Simd::Avx2Fma,
        MicroKernel::Neon => Simd::Neon,
        MicroKernel::Scalar => Simd::None,
    }
}

/// The constants of the Cephes `expf` scheme both vector kernels evaluate, and the scheme for
/// one element (`exp_model`): what every lane of either kernel computes, step for step.
pub mod cephes {
    /// ln(2^-126): 2^n stays a normal number.
    pub const LO: f32 = -87.336_54;
    /// round(88 log2 e) = 127: 2^n stays finite.
    pub const HI: f32 = 88.0;
    pub const LOG2E: f32 = std::f32::consts::LOG2_E;
    /// ln 2 = C1 + C2 with C1 exact in 9 bits, so n * C1 is exact for |n| <= 2^15.
    pub const C1: f32 = 0.693_359_4;
    pub const C2: f32 = -2.121_944_4e-4;
    pub const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5, // Cephes' 5.0000001201e-1, which rounds to 0.5 in f32
    ];

    /// The scheme on one finite or infinite `x` with `f32::mul_add` where the kernels fuse (NaN
    /// is not modelled: the kernels return NaN for it). The tests' oracle for the kernels' bits;
    /// too slow to serve as a fallback where `mul_add` has no hardware instruction.
    pub fn exp_model(x: f32) -> f32 {
        let x = x.clamp(LO, HI);
        let n = (x * LOG2E).round_ties_even();
        let r = (-n).mul_add(C1, x);
        let r = (-n).mul_add(C2, r);
        let y = P[1..].iter().fold(P[0], |y, &c| y.mul_add(r, c));
        let y = y.mul_add(r * r, r + 1.0);
        y * f32::from_bits(((n as i32 + 127) as u32) << 23)
    }
}

/// Width of the column kernels: a score panel is `[rows][PANEL]` (the GEMM's NR).
pub const PANEL: usize = 16;

/// Column maxima of a `[rows][PANEL]` panel (`-inf` where there are no rows).
pub fn column_max(panel: &[f32]) -> [f32; PANEL] {
    assert_eq!(panel.len() % PANEL, 0, "column_max: not whole rows");
    match simd() {
        // SAFETY: `simd()` checked the instructions at run time.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => return unsafe { avx2::column_max(panel) },
        #[cfg(target_arch = "aarch64")]
        Simd::Neon => return unsafe { neon::column_max(panel) },
        _ => {}
    }
    let mut m = [f32::NEG_INFINITY; PANEL];
    for row in panel.chunks_exact(PANEL) {
        m.iter_mut().zip(row).for_each(|(m, &x)| *m = m.max(x));
    }
    m
}

/// `panel[t][j] = exp(panel[t][j] - shift[j])` on a `[rows][PANEL]` panel; returns the column
/// sums of the new values.
pub fn exp_columns(panel: &mut [f32], shift: &[f32; PANEL]) -> [f32; PANEL] {
    assert_eq!(panel.len() % PANEL, 0, "exp_columns: not whole rows");
    match simd() {
        // SAFETY: `simd()` checked the instructions at run time.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => return unsafe { avx2::exp_columns(panel, shift) },
        #[cfg(target_arch = "aarch64")]
        Simd::Neon => return unsafe { neon::exp_columns(panel, shift) },
        _ => {}
    }
    let mut sum = [0f32; PANEL];
    for row in panel.chunks_exact_mut(PANEL) {
        for ((x, s), &m) in row.iter_mut().zip(sum.iter_mut()).zip(shift) {
            *x = (*x - m).exp();
            *s += *x;
        }
    }
    sum
}

/// `xs[j] = exp(xs[j])` in place.
pub fn exp_inplace(xs: &mut [f32]) {
    match simd() {
        // SAFETY: `simd()` checked the instructions at run time.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => return unsafe { avx2::exp_inplace(xs) },
        #[cfg(target_arch = "aarch64")]
        Simd::Neon => return unsafe { neon::exp_inplace(xs) },
        _ => {}
    }
    xs.iter_mut().for_each(|x| *x = x.exp());
}

/// `xs[j] = xs[j] / (1 + exp(-k xs[j]))` in place (GELU2 is k = 1.702, spec §3.2).
pub fn x_sigmoid_kx(xs: &mut [f32], k: f32) {
    match simd() {
        // SAFETY: `simd()` checked the instructions at run time.
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2Fma => return unsafe { avx2::x_sigmoid_kx(xs, k) },
        #[cfg(target_arch = "aarch64")]
        Simd::Neon => return unsafe { neon::x_sigmoid_kx(xs, k) },
        _ => {}
    }
    xs.iter_mut().for_each(|x| *x /= 1.0 + (-k * *x).exp());
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::PANEL;
    use std::arch::x86_64::*;

    use super::cephes::{C1, C2, HI, LO, LOG2E, P};

    /// exp of 8 lanes (Cephes expf).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp8(x: __m256) -> __m256 {
        // max/min return the second operand when one is NaN: x second keeps NaN.
        let x = _mm256_min_ps(_mm256_set1_ps(HI), _mm256_max_ps(_mm256_set1_ps(LO), x));
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(x, _mm256_set1_ps(LOG2E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C1), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(C2), r);
        let mut y = _mm256_set1_ps(P[0]);
        for &c in &P[1..] {
            y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
        }
        let r2 = _mm256_mul_ps(r, r);
        y = _mm256_fmadd_ps(y, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0)));
        let bits = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvtps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(bits))
    }

    /// `f` on every 8 lanes of `xs` in place; the last partial group goes through a padded
    /// copy so every element takes the same path.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn map8_inplace(xs: &mut [f32], f: impl Fn(__m256) -> __m256) {
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            _mm256_storeu_ps(c.as_mut_ptr(), f(_mm256_loadu_ps(c.as_ptr())));
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut t = [0f32; 8];
            t[..tail.len()].copy_from_slice(tail);
            _mm256_storeu_ps(t.as_mut_ptr(), f(_mm256_loadu_ps(t.as_ptr())));
            let n = tail.len();
            tail.copy_from_slice(&t[..n]);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_inplace(xs: &mut [f32]) {
        map8_inplace(xs, |x| exp8(x));
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn x_sigmoid_kx(xs: &mut [f32], k: f32) {
        let (neg_k, one) = (_mm256_set1_ps(-k), _mm256_set1_ps(1.0));
        map8_inplace(xs, |x| {
            _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_mul_ps(neg_k, x))))
        });
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn column_max(panel: &[f32]) -> [f32; PANEL] {
        let neg_inf = _mm256_set1_ps(f32::NEG_INFINITY);
        let (mut m0, mut m1) = (neg_inf, neg_inf);
        for row in panel.chunks_exact(PANEL) {
            m0 = _mm256_max_ps(m0, _mm256_loadu_ps(row.as_ptr()));
            m1 = _mm256_max_ps(m1, _mm256_loadu_ps(row.as_ptr().add(8)));
        }
        let mut m = [0f32; PANEL];
        _mm256_storeu_ps(m.as_mut_ptr(), m0);
        _mm256_storeu_ps(m.as_mut_ptr().add(8), m1);
        m
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn exp_columns(panel: &mut [f32], shift: &[f32; PANEL]) -> [f32; PANEL] {
        let (s0, s1) = (
            _mm256_loadu_ps(shift.as_ptr()),
            _mm256_loadu_ps(shift.as_ptr().add(8)),
        );
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for row in panel.chunks_exact_mut(PANEL) {
            let p = row.as_mut_ptr();
            let e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(p), s0));
            let e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(p.add(8)), s1));
            _mm256_storeu_ps(p, e0);
            _mm256_storeu_ps(p.add(8), e1);
            a0 = _mm256_add_ps(a0, e0);
            a1 = _mm256_add_ps(a1, e1);
        }
        let mut sum = [0f32; PANEL];
        _mm256_storeu_ps(sum.as_mut_ptr(), a0);
        _mm256_storeu_ps(sum.as_mut_ptr().add(8), a1);
        sum
    }
}
