//! Interleaving rows into a 16-wide GEMM panel: `dst[q*16 + j] = src[j*ld + q]` for the rows
//! `j < rows` and the steps `q < kc`, zeros for the rows past `rows` (`gemm.rs` packs B this way
//! when op(B) is a transposed matrix).
//!
//! That is a transpose, and the plain loop writes one float per 64-byte line of `dst`, sixteen
//! times over: the convolutions' weight gradients (`dw += g col^T`, where col is the im2col
//! matrix, thousands of columns long) spent about a fifth of a CPU training step in it. The
//! AVX2 path loads eight steps of every row, transposes the two 8 x 8 blocks in registers and
//! writes eight whole panel rows. Packing only moves floats, so both paths give the same bits.

/// Width of the panel (`gemm_kernel::NR`).
const W: usize = super::gemm_kernel::NR;

/// `dst[q*W + j] = src[j*ld + q]` for `j < rows`, `q < kc`; `dst[q*W + j] = 0` for `j >= rows`.
/// `dst` holds `kc * W` floats; `src` holds row `j` at `j * ld .. j * ld + kc`.
pub(super) fn pack_rows_transposed(src: &[f32], ld: usize, rows: usize, kc: usize, dst: &mut [f32]) {
    assert!(rows <= W && dst.len() >= kc * W, "pack_rows_transposed: {rows} rows, {} floats for kc {kc}", dst.len());
    assert!(rows == 0 || kc == 0 || (rows - 1) * ld + kc <= src.len(), "pack_rows_transposed: source too short");
    #[cfg(target_arch = "x86_64")]
    if rows == W && is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present; the asserts above bound every read and write.
        unsafe { avx2::pack_full(src, ld, kc, dst) };
        return;
    }
    pack_plain(src, ld, rows, 0, kc, dst);
}

/// The plain loop over steps `q0..kc` (the whole job off x86, the tail of the AVX2 path).
fn pack_plain(src: &[f32], ld: usize, rows: usize, q0: usize, kc: usize, dst: &mut [f32]) {
    for j in 0..W {
        if j < rows {
            let row = &src[j * ld..j * ld + kc];
            for q in q0..kc {
                dst[q * W + j] = row[q];
            }
        } else {
            (q0..kc).for_each(|q| dst[q * W + j] = 0.0);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::W;

    /// All sixteen rows present: eight steps at a time through two 8 x 8 register transposes.
    ///
    /// # Safety
    /// AVX2 must be available; `src` holds 16 rows of `kc` floats `ld` apart and `dst` `kc * 16`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pack_full(src: &[f32], ld: usize, kc: usize, dst: &mut [f32]) {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        let full = kc / 8 * 8;
        for q in (0..full).step_by(8) {
            for half in 0..2 {
                let rows: [__m256; 8] = std::array::from_fn(|r| _mm256_loadu_ps(s.add((half * 8 + r) * ld + q)));
                let cols = transpose8(rows);
                for (t, v) in cols.iter().enumerate() {
                    _mm256_storeu_ps(d.add((q + t) * W + half * 8), *v);
                }
            }
        }
        super::pack_plain(src, ld, W, full, kc, dst);
    }

    /// The 8 x 8 transpose: `out[t][r] = rows[r][t]`.
    #[inline(always)]
    unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
        // Pairs of rows interleaved by element, then by pairs of elements: each 128-bit lane of
        // u holds a 4 x 4 corner of its column; the last step swaps lanes between them.
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row count and a few depths, including tails shorter than eight steps.
    #[test]
    fn interleaves_rows_and_zero_pads() {
        for rows in [0, 1, 7, 15, 16] {
            for kc in [0, 1, 7, 8, 9, 23, 256] {
                let ld = kc + 5;
                let src: Vec<f32> = (0..rows.max(1) * ld).map(|i| i as f32 * 0.5 - 3.0).collect();
                let mut dst = vec![f32::NAN; kc * W];
                pack_rows_transposed(&src, ld, rows, kc, &mut dst);
                for q in 0..kc {
                    for j in 0..W {
                        let want = if j < rows { src[j * ld + q] } else { 0.0 };
                        assert_eq!(dst[q * W + j].to_bits(), want.to_bits(), "rows {rows} kc {kc} q {q} j {j}");
                    }
                }
            }
        }
    }
}
