//! NEON twins of `vmath.rs`'s AVX2 kernels for 64-bit ARM: the same Cephes `expf` scheme, step
//! for step, on 4 lanes instead of 8. Every step is one IEEE operation in both (round to
//! nearest even, fused multiply-adds where the AVX2 code fuses), so each lane's result has the
//! same bits as on x86 and a seeded inpainting samples the same tokens on both
//! (`tests/vmath.rs` checks the lanes against a one-element-at-a-time model of the scheme).

#[cfg(target_arch = "aarch64")]
pub(super) use imp::{column_max, exp_columns, exp_inplace, x_sigmoid_kx};

#[cfg(target_arch = "aarch64")]
mod imp {
    use crate::cpu::ops::vmath::{cephes, PANEL};
    use std::arch::aarch64::*;

    /// exp of 4 lanes (Cephes expf; constants and order as `vmath::cephes`).
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn exp4(x: float32x4_t) -> float32x4_t {
        let x = vminq_f32(vdupq_n_f32(cephes::HI), vmaxq_f32(vdupq_n_f32(cephes::LO), x));
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(cephes::LOG2E)));
        // x - n C1 - n C2, each step one fused multiply-subtract (AVX2's fnmadd).
        let r = vfmsq_f32(x, n, vdupq_n_f32(cephes::C1));
        let r = vfmsq_f32(r, n, vdupq_n_f32(cephes::C2));
        let mut y = vdupq_n_f32(cephes::P[0]);
        for &c in &cephes::P[1..] {
            y = vfmaq_f32(vdupq_n_f32(c), y, r);
        }
        let r2 = vmulq_f32(r, r);
        y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0)), y, r2);
        let bits = vshlq_n_s32::<23>(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)));
        vmulq_f32(y, vreinterpretq_f32_s32(bits))
    }

    /// `f` on every 4 lanes of `xs` in place; the last partial group through a padded copy, so
    /// every element takes the same path.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn map4_inplace(xs: &mut [f32], f: impl Fn(float32x4_t) -> float32x4_t) {
        let mut chunks = xs.chunks_exact_mut(4);
        for c in &mut chunks {
            vst1q_f32(c.as_mut_ptr(), f(vld1q_f32(c.as_ptr())));
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut t = [0f32; 4];
            t[..tail.len()].copy_from_slice(tail);
            vst1q_f32(t.as_mut_ptr(), f(vld1q_f32(t.as_ptr())));
            let n = tail.len();
            tail.copy_from_slice(&t[..n]);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) unsafe fn exp_inplace(xs: &mut [f32]) {
        map4_inplace(xs, |x| exp4(x));
    }

    #[target_feature(enable = "neon")]
    pub(crate) unsafe fn x_sigmoid_kx(xs: &mut [f32], k: f32) {
        let (neg_k, one) = (vdupq_n_f32(-k), vdupq_n_f32(1.0));
        map4_inplace(xs, |x| vdivq_f32(x, vaddq_f32(one, exp4(vmulq_f32(neg_k, x)))));
    }

    /// The four 4-lane groups of a panel row.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn load_row(p: *const f32) -> [float32x4_t; 4] {
        [vld1q_f32(p), vld1q_f32(p.add(4)), vld1q_f32(p.add(8)), vld1q_f32(p.add(12))]
    }

    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn store_row(p: *mut f32, v: [float32x4_t; 4]) {
        for (q, x) in v.into_iter().enumerate() {
            vst1q_f32(p.add(4 * q), x);
        }
    }

    #[target_feature(enable = "neon")]
    pub(crate) unsafe fn column_max(panel: &[f32]) -> [f32; PANEL] {
        let mut m = [vdupq_n_f32(f32::NEG_INFINITY); 4];
        for row in panel.chunks_exact(PANEL) {
            let r = load_row(row.as_ptr());
            for q in 0..4 {
                m[q] = vmaxq_f32(m[q], r[q]);
            }
        }
        let mut out = [0f32; PANEL];
        store_row(out.as_mut_ptr(), m);
        out
    }

    #[target_feature(enable = "neon")]
    pub(crate) unsafe fn exp_columns(panel: &mut [f32], shift: &[f32; PANEL]) -> [f32; PANEL] {
        let s = load_row(shift.as_ptr());
        let mut acc = [vdupq_n_f32(0.0); 4];
        for row in panel.chunks_exact_mut(PANEL) {
            let p = row.as_mut_ptr();
            let mut e = load_row(p);
            for q in 0..4 {
                e[q] = exp4(vsubq_f32(e[q], s[q]));
                acc[q] = vaddq_f32(acc[q], e[q]);
            }
            store_row(p, e);
        }
        let mut sum = [0f32; PANEL];
        store_row(sum.as_mut_ptr(), acc);
        sum
    }
}
