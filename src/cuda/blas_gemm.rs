//! cuBLAS for the unbatched f32 GEMMs of `kernels/gemm.cu`'s `GemmParams` form, used for the
//! Linear's gradients in training (`dx = dY W`, `dW = dY^T X`; the forward is `blas::sgemm_linear`).
//!
//! `GemmParams` describes C = alpha A B^T + beta C with strided row-major operands:
//!   C[i, j] at i ldc_m + j,   A[i, k] at i lda_m + k lda_k,   B[j, k] at j ldb_n + k ldb_k.
//! cuBLAS computes the column-major C' (M x N) = op(A') op(B') where a column-major X with leading
//! dimension ld holds X(r, c) at r + c ld. The row-major C [m, n] is the column-major C^T [n, m]
//! (ld = ldc_m), and C^T = B' A' with B' [n, k] (B'(j, k) = B[j, k]) and A' [k, m] (A'(k, i) =
//! A[i, k]). So cuBLAS's first operand is our B and its second our A, with M = n, N = m, K = k:
//! * B'(j, k) = B[j ldb_n + k ldb_k]: with ldb_n = 1 it is column-major with ld = ldb_k (N);
//!   with ldb_k = 1 it is the transpose of the column-major [k, n] with ld = ldb_n (T).
//! * A'(k, i) = A[i lda_m + k lda_k]: with lda_k = 1 it is column-major with ld = lda_m (N);
//!   with lda_m = 1 it is the transpose of the column-major [m, k] with ld = lda_k (T).
//!
//! Other strides (neither 1) have no cuBLAS form: `sgemm_args` gives None and the caller runs the
//! hand-written kernel. `tests/gemm_blas_args.rs` checks the mapping on the CPU by evaluating the
//! arguments with the column-major definition above.
//!
//! Numerics as `blas.rs` says: f32 products and sums (no TF32), in cuBLAS's order.

use super::blas::{dim, with_handle};
use super::launch::{check_f32, device_ptr};
use super::ops::gemm::GemmParams;
use super::CudaStorage;
use crate::error::{Error, Result};
use cudarc::cublas::result as cublas;
use cudarc::cublas::sys::cublasOperation_t;

/// Set to `0` to keep the Linear's gradients on the hand-written kernel where cuBLAS is usable.
pub const GRADIENTS_ENV: &str = "FDM_CUBLAS_GRADIENTS";

/// Whether the Linear's gradients may run on cuBLAS: unless `FDM_CUBLAS_GRADIENTS=0` (read once).
pub fn gradients_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(GRADIENTS_ENV).map_or(true, |v| v != "0"))
}

/// One `cublasSgemm` call: C' (m x n, ldc) = alpha op(first) op(second) + beta C', where `first`
/// is the GEMM's B operand and `second` its A (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgemmArgs {
    pub trans_first: bool,
    pub trans_second: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ld_first: usize,
    pub ld_second: usize,
    pub ldc: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// The cuBLAS form of an unbatched `p`, or None where a stride pattern has none.
pub fn sgemm_args(p: &GemmParams) -> Option<SgemmArgs> {
    if p.batch_inner != 1 {
        return None;
    }
    let (m, n, k) = (p.n as usize, p.m as usize, p.k as usize);
    // (transposed, leading dimension) of an operand whose stride along the output axis is
    // `along_out` and along the reduction `along_k`.
    let form = |along_out: u32, along_k: u32| match (along_out, along_k) {
        (1, ld) => Some((false, ld as usize)),
        (ld, 1) => Some((true, ld as usize)),
        _ => None,
    };
    let (trans_first, ld_first) = form(p.ldb_n, p.ldb_k)?;
    // The second operand is read (k, i): "along the output" is its k stride here.
    let (trans_second, ld_second) = form(p.lda_k, p.lda_m)?;
    let args = SgemmArgs { trans_first, trans_second, m, n, k, ld_first, ld_second, ldc: p.ldc_m as usize, alpha: p.alpha, beta: p.beta };
    // cuBLAS's own rules: each leading dimension covers the rows of the stored column-major matrix.
    let rows_first = if trans_first { k } else { m };
    let rows_second = if trans_second { n } else { k };
    let fits = |ld: usize, rows: usize| ld >= rows.max(1);
    (fits(ld_first, rows_first) && fits(ld_second, rows_second) && fits(args.ldc, m)).then_some(args)
}

/// Elements an operand spans: the last element's offset + 1 (0 when empty).
fn span(rows: u32, ld_r: u32, cols: u32, ld_c: u32) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    (rows as usize - 1) * ld_r as usize + (cols as usize - 1) * ld_c as usize + 1
}

/// `c = alpha a b^T + beta c` (one `GemmParams` batch) on cuBLAS. Errors where `p` has no cuBLAS
/// form (`sgemm_args`), a buffer is too short, or cuBLAS is unavailable.
pub fn sgemm_params(c: &mut CudaStorage, a: &CudaStorage, b: &CudaStorage, p: &GemmParams) -> Result<()> {
    const OP: &str = "sgemm_params";
    let args = sgemm_args(p).ok_or_else(|| Error::shape(OP, format!("no cuBLAS form for {p:?}")))?;
    check_f32(OP, a, span(p.m, p.lda_m, p.k, p.lda_k))?;
    check_f32(OP, b, span(p.n, p.ldb_n, p.k, p.ldb_k))?;
    check_f32(OP, c, span(p.m, p.ldc_m, p.n, 1))?;
    if args.m == 0 || args.n == 0 {
        return Ok(());
    }
    let op = |t: bool| if t { cublasOperation_t::CUBLAS_OP_T } else { cublasOperation_t::CUBLAS_OP_N };
    let (m, n, k) = (dim(OP, "n", args.m)?, dim(OP, "m", args.n)?, dim(OP, "k", args.k)?);
    let (ld1, ld2, ldc) = (dim(OP, "ldb", args.ld_first)?, dim(OP, "lda", args.ld_second)?, dim(OP, "ldc", args.ldc)?);
    let (cp, ap, bp) = (device_ptr(c, 0), device_ptr(a, 0), device_ptr(b, 0));
    with_handle(a.device(), OP, |h| unsafe {
        let (t1, t2) = (op(args.trans_first), op(args.trans_second));
        cublas::sgemm(h, t1, t2, m, n, k, &args.alpha, bp as *const f32, ld1, ap as *const f32, ld2, &args.beta, cp as *mut f32, ldc)
    })
}
