//! Strided row moves of the convolutions' column matrices: `copy_strided` gathers every
//! `stride`-th element of an input row into a column row (im2col, and the phase planes of
//! strided convolutions), `add_strided` scatters a column row back with `+=` (col2im, the input
//! gradient of a strided convolution). Stride 1 is a slice copy or add. Stride 2 (every strided
//! convolution of the models: the codec's 4x4/stride-2 downsampling) has AVX2 kernels, which
//! give the same bits as the loops: a gather is a copy, and a scatter adds each element once,
//! writing the untouched odd elements back unchanged (a blend, not `+ 0.0`, which would turn
//! -0.0 into +0.0). Element-wise loops over `step_by` were 5-6 % of a tiny phase-1a step.

use super::vmath::simd;

/// `dst[t] = src[t * stride]` for every t (`src` holds at least `(dst.len()-1)*stride + 1`).
pub fn copy_strided(dst: &mut [f32], src: &[f32], stride: usize) {
    if stride == 1 {
        dst.copy_from_slice(&src[..dst.len()]);
        return;
    }
    let done = match (stride, simd()) {
        // SAFETY: `simd()` checked AVX2 at run time.
        #[cfg(target_arch = "x86_64")]
        (2, super::vmath::Simd::Avx2Fma) => unsafe { avx2::gather_even(dst, src) },
        _ => 0,
    };
    dst[done..].iter_mut().zip(src[done * stride..].iter().step_by(stride)).for_each(|(d, &s)| *d = s);
}

/// `dst[t * stride] += src[t]` for every t (the adjoint of `copy_strided`; `dst` holds at
/// least `(src.len()-1)*stride + 1`).
pub fn add_strided(dst: &mut [f32], src: &[f32], stride: usize) {
    if stride == 1 {
        dst[..src.len()].iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        return;
    }
    let done = match (stride, simd()) {
        // SAFETY: `simd()` checked AVX2 at run time.
        #[cfg(target_arch = "x86_64")]
        (2, super::vmath::Simd::Avx2Fma) => unsafe { avx2::scatter_add_even(dst, src) },
        _ => 0,
    };
    dst[done * stride..].iter_mut().step_by(stride).zip(&src[done..]).for_each(|(d, &s)| *d += s);
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `dst[t] = src[2t]` for the leading groups of 8 whose 16 source elements all lie in
    /// `src`; returns how many elements of `dst` were written.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn gather_even(dst: &mut [f32], src: &[f32]) -> usize {
        let groups = dst.len().min(src.len() / 2) / 8;
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        for g in 0..groups {
            let a = _mm256_loadu_ps(s.add(16 * g));
            let b = _mm256_loadu_ps(s.add(16 * g + 8));
            // [a0 a2 b0 b2 | a4 a6 b4 b6] -> [a0 a2 a4 a6 b0 b2 b4 b6]
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let even = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(even)));
            _mm256_storeu_ps(d.add(8 * g), even);
        }
        8 * groups
    }

    /// `dst[2t] += src[t]` for the leading groups of 8 whose 16 destination elements all lie
    /// in `dst`; the odd elements are stored back as they were. Returns how many elements of
    /// `src` were added.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn scatter_add_even(dst: &mut [f32], src: &[f32]) -> usize {
        let groups = src.len().min(dst.len() / 2) / 8;
        let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
        for g in 0..groups {
            let v = _mm256_loadu_ps(s.add(8 * g));
            // [v0 v1 v2 v3 | v4 v5 v6 v7] -> lo [v0 v0 v1 v1 | v2 v2 v3 v3], hi [v4 .. v7]
            let lo = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
            let hi = _mm256_permutevar8x32_ps(v, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
            let (p0, p1) = (d.add(16 * g), d.add(16 * g + 8));
            let (d0, d1) = (_mm256_loadu_ps(p0), _mm256_loadu_ps(p1));
            // Even lanes take the sum, odd lanes their old value.
            _mm256_storeu_ps(p0, _mm256_blend_ps::<0b1010_1010>(_mm256_add_ps(d0, lo), d0));
            _mm256_storeu_ps(p1, _mm256_blend_ps::<0b1010_1010>(_mm256_add_ps(d1, hi), d1));
        }
        8 * groups
    }
}
