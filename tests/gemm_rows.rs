//! `cpu::ops::gemm_rows::gemm_b_in_place` (B read where it lies: row r at offset `rows[r]`, in
//! runs of `width` columns `stride` apart; the stride-1 convolution's implicit im2col) against the
//! f64 oracle `gemm_ref` on the same B copied out densely. Covers widths that are not a multiple
//! of the micro-kernel's NR (16), row counts that are not multiples of MR (6), several k slices
//! and row blocks, a transposed A, alpha / beta / row bias, C with ldc > n, both micro-kernels,
//! panels that must be packed (rows ending at the end of the buffer), and the k = 0 / alpha = 0
//! cases where A and B must not be read.
use fdm::cpu::ops::gemm::gemm_ref;
use fdm::cpu::ops::gemm_kernel::MicroKernel;
use fdm::cpu::ops::gemm_rows::{gemm_b_in_place, gemm_b_in_place_with, BInPlace};
use fdm::params::gemm::GemmParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

fn kernels() -> Vec<MicroKernel> {
    MicroKernel::ALL.into_iter().filter(|k| k.is_available()).collect()
}

#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    k: usize,
    runs: usize,
    width: usize,
    stride: usize,
    /// Floats of buffer past the furthest row (0: the last panels cannot be read in place).
    tail: usize,
    trans_a: bool,
    alpha: f32,
    beta: f32,
    bias: bool,
    /// ldc - n.
    ldc_extra: usize,
}

const BASE: Case = Case { m: 6, k: 9, runs: 1, width: 16, stride: 16, tail: 16, trans_a: false, alpha: 1.0, beta: 0.0, bias: false, ldc_extra: 0 };

/// Runs `case` with every kernel against the oracle; row offsets are random, and one row ends
/// exactly `tail` floats before the end of the buffer.
fn check(case: Case, seed: u64) {
    let (m, k, n) = (case.m, case.k, case.runs * case.width);
    let span = (case.runs - 1) * case.stride + case.width;
    let max_row = 3 * span + 5;
    let b = random_vec(seed, max_row + span + case.tail, -1.0, 1.0);
    let mut rng = Rng::new(seed + 1);
    let mut rows: Vec<usize> = (0..k).map(|_| rng.below(max_row as u64 + 1) as usize).collect();
    rows[k / 2] = max_row;
    let dense: Vec<f32> = (0..k * n).map(|i| b[rows[i / n] + (i % n) / case.width * case.stride + i % n % case.width]).collect();
    let ldc = n + case.ldc_extra;
    let p = GemmParams::with_trans(m, n, k, case.trans_a, false).alpha(case.alpha).beta(case.beta);
    let p = p.leading_dims(if case.trans_a { m } else { k }, n, ldc);
    let s = 1.0 / (k.max(1) as f32).sqrt();
    let a = random_vec(seed + 2, m * k, -s, s);
    let c0 = random_vec(seed + 3, (m - 1) * ldc + n, -1.0, 1.0);
    let bias = case.bias.then(|| random_vec(seed + 4, m, -1.0, 1.0));
    let mut want = c0.clone();
    gemm_ref(&p, &a, &dense, &mut want);
    if let Some(bias) = &bias {
        (0..m * ldc).filter(|i| i % ldc < n).for_each(|i| want[i] += bias[i / ldc]);
    }
    let layout = BInPlace { rows: &rows, width: case.width, stride: case.stride };
    for kernel in kernels() {
        let mut got = c0.clone();
        gemm_b_in_place_with(kernel, &p, &a, &b, layout, bias.as_deref(), &mut got);
        assert_close(&got, &want, TOL_CPU_F32, &format!("{kernel:?} {case:?}"));
    }
}

#[test]
fn gemm_b_in_place_matches_ref_odd_shapes_cpu() {
    let cases = [
        // One full tile; widths around NR; rows not a multiple of MR.
        BASE,
        Case { m: 1, k: 1, width: 1, stride: 1, ..BASE },
        Case { m: 7, k: 27, runs: 3, width: 15, stride: 17, ..BASE },
        Case { m: 13, k: 50, runs: 5, width: 17, stride: 19, ..BASE },
        // A 3x3 conv's shape in miniature: 64 output channels, runs of 40 = 2 panels + 8.
        Case { m: 64, k: 27, runs: 3, width: 40, stride: 42, ..BASE },
        // Several k slices (k = 600: 3 slices of 200) and two row blocks (m = 400).
        Case { m: 400, k: 600, runs: 2, width: 33, stride: 35, ..BASE },
        // Few columns, many rows: the rows are split between tasks.
        Case { m: 100, k: 20, runs: 1, width: 5, stride: 5, ..BASE },
    ];
    for (i, &case) in cases.iter().enumerate() {
        check(case, 100 + 10 * i as u64);
    }
}

#[test]
fn gemm_b_in_place_transposed_a_alpha_beta_bias_ldc_cpu() {
    let full = Case { trans_a: true, alpha: 0.5, beta: 2.0, bias: true, ldc_extra: 3, ..BASE };
    check(Case { m: 13, k: 50, runs: 5, width: 7, stride: 9, ..full }, 1);
    check(Case { m: 70, k: 300, runs: 2, width: 48, stride: 50, ..full }, 2);
    // Bias with beta = 0 (the convolution's case: C is not read).
    check(Case { m: 9, k: 18, runs: 4, width: 21, stride: 23, bias: true, ..BASE }, 3);
}

#[test]
fn gemm_b_in_place_packs_panels_at_the_buffer_end_cpu() {
    // No tail: the furthest row's last panel of each run would load past the buffer in place,
    // so it is packed; a contiguous grid (stride == width) and a gapped one.
    check(Case { m: 10, k: 12, runs: 4, width: 21, stride: 21, tail: 0, ..BASE }, 4);
    check(Case { m: 8, k: 30, runs: 3, width: 16, stride: 20, tail: 0, beta: 1.0, bias: true, ..BASE }, 5);
    check(Case { m: 6, k: 5, runs: 2, width: 3, stride: 4, tail: 2, ..BASE }, 6);
}

#[test]
fn gemm_b_in_place_without_a_product_reads_neither_a_nor_b_cpu() {
    let rows = [0usize, 3];
    let layout = BInPlace { rows: &rows, width: 4, stride: 4 };
    let (b, bias) = (vec![f32::NAN; 8], [1.0f32, -2.0]);
    // alpha = 0: C = beta * C + bias, NaNs in A and B ignored.
    let mut c = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    gemm_b_in_place(&GemmParams::new(2, 4, 2).alpha(0.0).beta(0.5), &[f32::NAN; 4], &b, layout, Some(&bias), &mut c);
    assert_eq!(c, [1.5, 2.0, 2.5, 3.0, 0.5, 1.0, 1.5, 2.0]);
    // k = 0, beta = 0: C = bias without reading C.
    let mut c = vec![f32::NAN; 8];
    gemm_b_in_place(&GemmParams::new(2, 4, 0), &[], &b, BInPlace { rows: &[], width: 4, stride: 4 }, Some(&bias), &mut c);
    assert_eq!(c, [1.0, 1.0, 1.0, 1.0, -2.0, -2.0, -2.0, -2.0]);
}

#[test]
#[should_panic(expected = "runs past its buffer")]
fn gemm_b_in_place_rejects_rows_past_the_buffer_cpu() {
    let rows = [0usize, 5];
    let mut c = vec![0.0; 4];
    gemm_b_in_place(&GemmParams::new(1, 4, 2), &[1.0, 1.0], &[0.0; 8], BInPlace { rows: &rows, width: 4, stride: 4 }, None, &mut c);
}
