//! The cuBLAS form of the hand-written GEMM's `GemmParams` (`fdm::cuda::blas_gemm::sgemm_args`),
//! checked without a GPU: the arguments it gives are evaluated with the column-major `sgemm`
//! definition (C'(r, c) at r + c ldc = alpha sum_k op(first)(r, k) op(second)(k, c) + beta C',
//! op(X)(r, c) = X[r + c ld], or X[c + r ld] when transposed), with the GEMM's B as `first` and
//! its A as `second`, and must give what `GemmParams` itself defines, C[i, j] at i ldc_m + j =
//! alpha sum_k A[i lda_m + k lda_k] B[j ldb_n + k ldb_k] + beta C[i, j], on the Linear's three
//! products at odd sizes.

use fdm::cuda::blas_gemm::{sgemm_args, SgemmArgs};
use fdm::cuda::ops::gemm::GemmParams;
use fdm::testing::random_vec;

/// The GEMM as `GemmParams` defines it (f64 sums), over `c` holding the old C.
fn by_params(p: &GemmParams, a: &[f32], b: &[f32], c: &[f32]) -> Vec<f64> {
    let mut out: Vec<f64> = c.iter().map(|&v| v as f64).collect();
    for i in 0..p.m as usize {
        for j in 0..p.n as usize {
            let s: f64 = (0..p.k as usize)
                .map(|k| a[i * p.lda_m as usize + k * p.lda_k as usize] as f64 * b[j * p.ldb_n as usize + k * p.ldb_k as usize] as f64)
                .sum();
            let at = i * p.ldc_m as usize + j;
            out[at] = p.alpha as f64 * s + p.beta as f64 * out[at];
        }
    }
    out
}

/// The same buffers through cuBLAS's column-major definition of the arguments.
fn by_sgemm(s: &SgemmArgs, first: &[f32], second: &[f32], c: &[f32]) -> Vec<f64> {
    let op = |x: &[f32], trans: bool, ld: usize, r: usize, col: usize| if trans { x[col + r * ld] } else { x[r + col * ld] } as f64;
    let mut out: Vec<f64> = c.iter().map(|&v| v as f64).collect();
    for r in 0..s.m {
        for col in 0..s.n {
            let sum: f64 = (0..s.k).map(|k| op(first, s.trans_first, s.ld_first, r, k) * op(second, s.trans_second, s.ld_second, k, col)).sum();
            let at = r + col * s.ldc;
            out[at] = s.alpha as f64 * sum + s.beta as f64 * out[at];
        }
    }
    out
}

fn check(p: GemmParams, what: &str) {
    let span = |rows: u32, ld_r: u32, cols: u32, ld_c: u32| (rows as usize - 1) * ld_r as usize + (cols as usize - 1) * ld_c as usize + 1;
    let a = random_vec(1, span(p.m, p.lda_m, p.k, p.lda_k), -1.0, 1.0);
    let b = random_vec(2, span(p.n, p.ldb_n, p.k, p.ldb_k), -1.0, 1.0);
    let c = random_vec(3, span(p.m, p.ldc_m, p.n, 1), -1.0, 1.0);
    let args = sgemm_args(&p).unwrap_or_else(|| panic!("{what}: no cuBLAS form"));
    let (want, got) = (by_params(&p, &a, &b, &c), by_sgemm(&args, &b, &a, &c));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{what}: element {i}: {g} by the cuBLAS arguments, {w} by the GEMM");
    }
}

#[test]
fn the_linears_three_products_map_to_sgemm() {
    let (m, out, inp) = (7, 5, 3);
    check(GemmParams::linear(m, out, inp), "y = x w^T");
    check(GemmParams::linear_dx(m, out, inp), "dx = g w");
    check(GemmParams::linear_dw(m, out, inp, false), "dw = g^T x");
    check(GemmParams::linear_dw(m, out, inp, true), "dw += g^T x");
    check(GemmParams::linear_dx(1, 9, 4), "dx of one row");
}

#[test]
fn the_forward_arguments_are_those_of_sgemm_linear() {
    // blas::sgemm_linear's call: (T, N, out, m, inp, lda inp, ldb inp, ldc out).
    let s = sgemm_args(&GemmParams::linear(6, 4, 9)).unwrap();
    assert_eq!((s.trans_first, s.trans_second, s.m, s.n, s.k, s.ld_first, s.ld_second, s.ldc), (true, false, 4, 6, 9, 9, 9, 4));
}

#[test]
fn strides_without_a_cublas_form_are_refused() {
    let mut p = GemmParams::linear(6, 4, 9);
    p.lda_k = 2; // A's rows neither contiguous nor its columns
    p.lda_m = 20;
    assert_eq!(sgemm_args(&p), None);
    let mut p = GemmParams::linear(6, 4, 9);
    p.ldc_m = 3; // C's rows overlap: ldc < n
    assert_eq!(sgemm_args(&p), None);
}
