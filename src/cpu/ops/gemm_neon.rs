//! The 6 x 16 GEMM micro-kernel for 64-bit ARM (NEON, part of every aarch64 target), the twin of
//! the AVX2 kernel in `gemm_kernel.rs`: same packed panels, same tile, same bits.
//!
//! Why the same bits: both kernels update every accumulator with one fused multiply-add per k
//! step, in k order (`acc = fma(a[i], b[j], acc)`), and write back `alpha * acc` (then
//! `fma(beta, C, alpha * acc)` when beta != 0). FMLA by element and AVX2's FMA round once
//! each, so an ARM laptop samples the same tokens from a seed as an x86 one (`tests/gemm.rs`
//! checks both kernels against that fused recipe evaluated one element at a time).
//!
//! Registers: 24 accumulators (four 4-wide vectors per row), four B vectors and two A vectors
//! (rows 0-3 and 4-5) of the 32 NEON registers; no spills.

#[cfg(target_arch = "aarch64")]
pub(super) use imp::tile_6x16;

#[cfg(target_arch = "aarch64")]
mod imp {
    use crate::cpu::ops::gemm_kernel::{BSource, MR};
    use std::arch::aarch64::*;

    /// `C = alpha * sum_p a[p*MR+i] b.row(p)[j] + beta * C` on a full 6 x 16 tile.
    ///
    /// # Safety
    /// As `gemm_kernel::compute_tile_from` with `mr == MR`, `nr == NR`.
    #[target_feature(enable = "neon")]
    pub(crate) unsafe fn tile_6x16<B: BSource>(kc: usize, a: *const f32, b: B, c: *mut f32, ldc: usize, alpha: f32, beta: f32) {
        let z = vdupq_n_f32(0.0);
        let mut acc = [[z; 4]; MR];
        let mut pa = a;
        for p in 0..kc {
            let pb = b.row(p);
            let bv = [vld1q_f32(pb), vld1q_f32(pb.add(4)), vld1q_f32(pb.add(8)), vld1q_f32(pb.add(12))];
            let a03 = vld1q_f32(pa);
            let a45 = vld1_f32(pa.add(4));
            // acc[i][q] + bv[q] * a[i], fused: the lane index must be a constant, hence the macro.
            macro_rules! rows {
                ($i:expr, $f:ident, $av:expr, $lane:expr) => {
                    for q in 0..4 {
                        acc[$i][q] = $f::<$lane>(acc[$i][q], bv[q], $av);
                    }
                };
            }
            rows!(0, vfmaq_laneq_f32, a03, 0);
            rows!(1, vfmaq_laneq_f32, a03, 1);
            rows!(2, vfmaq_laneq_f32, a03, 2);
            rows!(3, vfmaq_laneq_f32, a03, 3);
            rows!(4, vfmaq_lane_f32, a45, 0);
            rows!(5, vfmaq_lane_f32, a45, 1);
            pa = pa.add(MR);
        }
        let (va, vb) = (vdupq_n_f32(alpha), vdupq_n_f32(beta));
        for (i, row) in acc.iter().enumerate() {
            let p = c.add(i * ldc);
            for (q, &v) in row.iter().enumerate() {
                let mut out = vmulq_f32(va, v);
                if beta != 0.0 {
                    out = vfmaq_f32(out, vb, vld1q_f32(p.add(4 * q)));
                }
                vst1q_f32(p.add(4 * q), out);
            }
        }
    }
}
