//! CPU GEMM (`cpu::ops::gemm`): literal products, the fast path (AVX2 and portable micro-kernels,
//! threaded and not) against the f64 triple loop on odd sizes, every transpose combination,
//! leading dimensions, alpha/beta, batching, and the model's real shapes.
use fdm::cpu::ops::gemm::{gemm_fast, gemm_ref, gemm_with};
use fdm::cpu::ops::gemm_kernel::MicroKernel;
use fdm::params::gemm::GemmParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

// Literal values from numpy:
//   A = (np.arange(12.).reshape(3, 4) - 5) / 4
//   B = (np.arange(20.).reshape(4, 5) % 7 - 3) / 2
//   C0 = np.ones((3, 5)) * 0.5
//   print((A @ B).tolist()); print((0.5 * (A @ B) + 2 * C0).tolist()); print(A.T.tolist())
fn literal_a() -> Vec<f32> {
    (0..12).map(|v| (v as f32 - 5.0) / 4.0).collect()
}
fn literal_b() -> Vec<f32> {
    (0..20).map(|v| ((v % 7) as f32 - 3.0) / 2.0).collect()
}
const AB: [f32; 15] = [1.375, -0.375, 1.375, -0.375, 0.5, -0.125, 0.125, 0.375, 0.625, 0.0, -1.625, 0.625, -0.625, 1.625, -0.5];
const HALF_AB_PLUS_2C: [f32; 15] = [1.6875, 0.8125, 1.6875, 0.8125, 1.25, 0.9375, 1.0625, 1.1875, 1.3125, 1.0, 0.1875, 1.3125, 0.6875, 1.8125, 0.75];

fn kernels() -> Vec<MicroKernel> {
    MicroKernel::ALL.into_iter().filter(|k| k.is_available()).collect()
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols * rows).map(|i| x[(i % rows) * cols + i / rows]).collect()
}

#[test]
fn gemm_literal_cpu() {
    let (a, b) = (literal_a(), literal_b());
    let p = GemmParams::new(3, 5, 4);
    for kernel in kernels() {
        let mut c = vec![f32::NAN; 15]; // beta = 0 must not read C
        gemm_with(kernel, true, &p, &a, &b, &mut c);
        assert_close(&c, &AB, TOL_CPU_F32, &format!("A*B {kernel:?}"));
        let mut c = vec![0.5; 15];
        gemm_with(kernel, true, &p.alpha(0.5).beta(2.0), &a, &b, &mut c);
        assert_close(&c, &HALF_AB_PLUS_2C, TOL_CPU_F32, &format!("0.5*A*B + 2*C {kernel:?}"));
    }
    let mut c = vec![0.0; 15];
    gemm_ref(&p, &a, &b, &mut c);
    assert_close(&c, &AB, TOL_CPU_F32, "A*B ref");
    // The same product from A stored transposed ([4, 3]) and B stored transposed ([5, 4]).
    let at = transpose(&a, 3, 4);
    assert_eq!(&at[..3], &[-1.25, -0.25, 0.75]);
    let bt = transpose(&b, 4, 5);
    let mut c = vec![0.0; 15];
    gemm_fast(&GemmParams::with_trans(3, 5, 4, true, true), &at, &bt, &mut c);
    assert_close(&c, &AB, TOL_CPU_F32, "A^T^T * B^T^T");
}

/// Random operands for `p` (one is scaled by 1/sqrt(k) so outputs stay O(1) and the f32 sum's
/// rounding, ~sqrt(k) * 6e-8 * O(1), stays well inside the 1e-5 absolute tolerance).
fn operands(p: &GemmParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (la, lb, lc) = p.required_lens();
    let s = 1.0 / (p.k.max(1) as f32).sqrt();
    (random_vec(seed, la, -s, s), random_vec(seed + 1, lb, -1.0, 1.0), random_vec(seed + 2, lc, -1.0, 1.0))
}

fn check_fast_vs_ref(p: &GemmParams, seed: u64, what: &str) {
    let (a, b, c0) = operands(p, seed);
    let mut want = c0.clone();
    gemm_ref(p, &a, &b, &mut want);
    for kernel in kernels() {
        for parallel in [true, false] {
            let mut got = c0.clone();
            gemm_with(kernel, parallel, p, &a, &b, &mut got);
            assert_close(&got, &want, TOL_CPU_F32, &format!("{what} {kernel:?} parallel={parallel} {p:?}"));
        }
    }
}

#[test]
fn gemm_fast_matches_ref_all_transposes_odd_sizes_cpu() {
    let sizes = [(1, 1, 1), (7, 13, 5), (6, 16, 256), (37, 19, 300), (150, 70, 513), (5, 200, 3), (13, 1, 40)];
    let mut seed = 10;
    for &(m, n, k) in &sizes {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            seed += 3;
            check_fast_vs_ref(&GemmParams::with_trans(m, n, k, ta, tb), seed, "dense");
        }
    }
}

#[test]
fn gemm_fast_respects_leading_dims_alpha_beta_cpu() {
    // Operands inside wider matrices (ld > row length), C a window of a wider matrix whose
    // other columns must stay untouched; alpha and beta general.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
        let (m, n, k) = (23, 35, 29);
        let lda = if ta { m + 3 } else { k + 5 };
        let ldb = if tb { k + 2 } else { n + 7 };
        let p = GemmParams::with_trans(m, n, k, ta, tb).leading_dims(lda, ldb, n + 4).alpha(-0.75).beta(0.5);
        check_fast_vs_ref(&p, 100 + ta as u64 * 2 + tb as u64, "strided");
        let (a, b, c0) = operands(&p, 7);
        let mut c = c0.clone();
        gemm_fast(&p, &a, &b, &mut c);
        for i in 0..m - 1 {
            assert_eq!(&c[i * (n + 4) + n..(i + 1) * (n + 4)], &c0[i * (n + 4) + n..(i + 1) * (n + 4)], "padding columns of C changed");
        }
    }
}

#[test]
fn gemm_beta_zero_ignores_nan_and_k_zero_scales_cpu() {
    let p = GemmParams::new(9, 20, 17);
    let (a, b, _) = operands(&p, 3);
    let mut want = vec![0.0; 180];
    gemm_ref(&p, &a, &b, &mut want);
    let mut got = vec![f32::NAN; 180];
    gemm_fast(&p, &a, &b, &mut got);
    assert_close(&got, &want, TOL_CPU_F32, "beta 0 over NaN");
    // k = 0: C = beta * C.
    let p0 = GemmParams::new(2, 3, 0).beta(2.0);
    let mut c = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    gemm_fast(&p0, &[], &[], &mut c);
    assert_eq!(c, vec![2.0, 4.0, 6.0, 8.0, 10.0, 12.0]);
}

#[test]
fn gemm_batched_matches_ref_cpu() {
    // Small products (one task each), a shared B (stride 0) and large products (threaded each).
    let small = GemmParams::with_trans(10, 12, 8, false, true).batched(5, 10 * 8, 12 * 8, 10 * 12);
    check_fast_vs_ref(&small, 40, "batched small");
    let shared_b = GemmParams::new(17, 33, 21).batched(4, 17 * 21, 0, 17 * 33);
    check_fast_vs_ref(&shared_b, 41, "batched shared B");
    // Attention-like: per head q [256, 64] x k^T.
    let heads = GemmParams::with_trans(256, 256, 64, false, true).batched(3, 256 * 64, 256 * 64, 256 * 256);
    check_fast_vs_ref(&heads, 42, "batched heads");
}

#[test]
fn gemm_fast_matches_ref_model_shapes_cpu() {
    // Linear layers at 1024 tokens (x [1024, in] * W^T, W [out, in]): q/k/v/proj 512->512,
    // MLP 512->2048 and 2048->512; the conv 3x3 256->256 at 32x32 as im2col
    // (W [256, 2304] * col [2304, 1024]); and the weight gradient g^T x of a linear layer.
    let shapes = [
        GemmParams::with_trans(1024, 512, 512, false, true),
        GemmParams::with_trans(1024, 2048, 512, false, true),
        GemmParams::with_trans(1024, 512, 2048, false, true),
        GemmParams::with_trans(256, 1024, 2304, false, false),
        GemmParams::with_trans(512, 512, 1024, true, false),
    ];
    for (i, p) in shapes.iter().enumerate() {
        let (a, b, _) = operands(p, 200 + i as u64);
        let (m, n) = (p.m as usize, p.n as usize);
        let mut got = vec![f32::NAN; m * n];
        gemm_fast(p, &a, &b, &mut got);
        // The f64 oracle on three 40-row bands (first rows, an unaligned middle band, the last
        // rows with their edge tiles): the full oracle would cost 0.3-1 G f64 multiply-adds per
        // shape. Band rows of op(A) start at row r0 (A as stored) or column r0 (A transposed).
        for r0 in [0, m / 2 - 17, m - 40] {
            let sub = GemmParams { m: 40, ..*p };
            let a_off = if p.is_trans_a() { r0 } else { r0 * p.lda as usize };
            let mut want = vec![0.0; 40 * n];
            gemm_ref(&sub, &a[a_off..], &b, &mut want);
            assert_close(&got[r0 * n..(r0 + 40) * n], &want, TOL_CPU_F32, &format!("model shape {p:?}, rows {r0}.."));
        }
    }
}

#[test]
fn gemm_fast_large_blocks_and_slice_groups_cpu() {
    // Past every blocking limit of `gemm.rs`: n = 3080 is two column blocks (NC = 3072, then 8),
    // m = 2310 two row blocks (MO = 2304, then 6), and k = 600 with 3072 + 2304 packed columns
    // and rows exceeds the packing budget, so the k slices come in two groups (512, then 88).
    // Checked in 40-row bands as above: the first rows, a middle band, and the last rows (2270..,
    // across the row-block boundary); every band spans both column blocks.
    for (ta, tb) in [(false, false), (true, true)] {
        let p = GemmParams::with_trans(2310, 3080, 600, ta, tb).beta(0.5);
        let (a, b, c0) = operands(&p, 300 + ta as u64);
        let (m, n) = (p.m as usize, p.n as usize);
        let mut got = c0.clone();
        gemm_fast(&p, &a, &b, &mut got);
        for r0 in [0, 1001, m - 40] {
            let sub = GemmParams { m: 40, ..p };
            let a_off = if ta { r0 } else { r0 * p.lda as usize };
            let mut want = c0[r0 * n..(r0 + 40) * n].to_vec();
            gemm_ref(&sub, &a[a_off..], &b, &mut want);
            assert_close(&got[r0 * n..(r0 + 40) * n], &want, TOL_CPU_F32, &format!("{p:?}, rows {r0}.."));
        }
    }
}

#[test]
#[should_panic(expected = "shorter than needed")]
fn gemm_rejects_short_slices_cpu() {
    let p = GemmParams::new(4, 4, 4);
    let mut c = vec![0.0; 16];
    gemm_fast(&p, &[0.0; 15], &[0.0; 16], &mut c);
}

/// Every fused micro-kernel (AVX2 on x86-64, NEON on 64-bit ARM) gives the bits of one fused
/// multiply-add per k step in k order, then `alpha * acc` and, with beta, `fma(beta, C, alpha *
/// acc)`: the recipe evaluated here one element at a time. So both architectures compute the
/// same products to the bit, and a seed samples the same tokens on either.
#[test]
fn fused_micro_kernels_give_the_recipe_bits_cpu() {
    use fdm::cpu::ops::gemm_kernel::{compute_tile, MR, NR};
    let fused: Vec<MicroKernel> = kernels().into_iter().filter(|k| k.is_fused()).collect();
    if fused.is_empty() {
        eprintln!("SKIP (no fused micro-kernel on this CPU)");
        return;
    }
    for kc in [1, 3, 64, 257] {
        let a = random_vec(10 + kc as u64, kc * MR, -1.0, 1.0);
        let b = random_vec(20 + kc as u64, kc * NR, -1.0, 1.0);
        let c0 = random_vec(30 + kc as u64, MR * NR, -1.0, 1.0);
        let acc: Vec<f32> = (0..MR * NR)
            .map(|e| (0..kc).fold(0f32, |s, p| a[p * MR + e / NR].mul_add(b[p * NR + e % NR], s)))
            .collect();
        for (alpha, beta) in [(1.0f32, 0.0f32), (1.5, 0.5), (-0.75, 1.0)] {
            let want: Vec<u32> = acc
                .iter()
                .zip(&c0)
                .map(|(&s, &c)| if beta == 0.0 { alpha * s } else { beta.mul_add(c, alpha * s) }.to_bits())
                .collect();
            for &kernel in &fused {
                let mut c = c0.clone();
                // SAFETY: full panels of kc rows, a full MR x NR tile with row stride NR, and
                // the kernel is available here.
                unsafe { compute_tile(kernel, kc, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), NR, MR, NR, alpha, beta) };
                let got: Vec<u32> = c.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want, "{kernel:?} kc {kc} alpha {alpha} beta {beta}");
            }
        }
    }
}

/// Products one k slice deep (k <= 256) with A stored row-major take the shallow path
/// (`gemm_shallow.rs`: B packed by the caller, A packed per row panel inside the tasks). The
/// same product with A stored transposed takes the blocked path, whose packed panels hold the
/// same values: both must give the same bits, and match the oracle. Edge rows and columns, a
/// wider C, alpha and beta, every kernel, threads on and off, and the shallow path's limits
/// (k = 256, n x k at its 65536-float B budget) on both sides.
#[test]
fn shallow_gemm_gives_the_blocked_paths_bits_cpu() {
    let shapes = [(1024, 64, 64), (1024, 256, 64), (1024, 64, 256), (7, 5, 3), (100, 17, 33), (13, 256, 256), (61, 257, 255), (6, 16, 1)];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        for (alpha, beta, extra) in [(1.0, 0.0, 0), (0.5, 2.0, 3)] {
            let p = GemmParams::with_trans(m, n, k, false, true).alpha(alpha).beta(beta).leading_dims(k, k, n + extra);
            let pt = GemmParams::with_trans(m, n, k, true, true).alpha(alpha).beta(beta).leading_dims(m, k, n + extra);
            let (a, b, c0) = operands(&p, 40 + i as u64);
            let a_t = transpose(&a, m, k);
            let mut want = c0.clone();
            gemm_ref(&p, &a, &b, &mut want);
            for kernel in kernels() {
                for parallel in [true, false] {
                    let (mut shallow, mut blocked) = (c0.clone(), c0.clone());
                    gemm_with(kernel, parallel, &p, &a, &b, &mut shallow);
                    gemm_with(kernel, parallel, &pt, &a_t, &b, &mut blocked);
                    let what = format!("m {m} n {n} k {k} alpha {alpha} beta {beta} {kernel:?} parallel={parallel}");
                    assert!(shallow.iter().zip(&blocked).all(|(x, y)| x.to_bits() == y.to_bits()), "{what}: bits differ from the blocked path");
                    assert_close(&shallow, &want, TOL_CPU_F32, &what);
                }
            }
        }
    }
}
