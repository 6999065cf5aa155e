//! Launchers for `kernels/gemm.cu`: C = alpha * A B^T + bias + beta * C over a two-level batch,
//! every operand addressed by element strides (the Linear layout `[out, in]`, its two backward
//! products, and per-head attention products without permuting copies).

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "gemm";
/// Output tile per block (GEMM_BM x GEMM_BN in the kernel) and threads per block.
const TILE: usize = 64;
const THREADS: u32 = 256;

/// Same layout as `struct GemmParams` in kernels/gemm.cu. A[m, k] is at
/// `a[m * lda_m + k * lda_k]`, B[n, k] at `b[n * ldb_n + k * ldb_k]`, C[m, n] at `c[m * ldc_m + n]`;
/// batch z = outer * batch_inner + inner adds `x_outer * outer + x_inner * inner` to each pointer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch_inner: u32,
    pub lda_m: u32,
    pub lda_k: u32,
    pub ldb_n: u32,
    pub ldb_k: u32,
    pub ldc_m: u32,
    pub a_outer: u32,
    pub a_inner: u32,
    pub b_outer: u32,
    pub b_inner: u32,
    pub c_outer: u32,
    pub c_inner: u32,
    pub alpha: f32,
    pub beta: f32,
}

impl GemmParams {
    fn unbatched(m: usize, n: usize, k: usize, lda: (usize, usize), ldb: (usize, usize)) -> Self {
        GemmParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            batch_inner: 1,
            lda_m: lda.0 as u32,
            lda_k: lda.1 as u32,
            ldb_n: ldb.0 as u32,
            ldb_k: ldb.1 as u32,
            ldc_m: n as u32,
            alpha: 1.0,
            ..bytemuck::Zeroable::zeroed()
        }
    }
    /// Linear forward: Y [m, out] = X [m, in] W^T, W [out, in].
    pub fn linear(m: usize, out: usize, inp: usize) -> Self {
        Self::unbatched(m, out, inp, (inp, 1), (inp, 1))
    }
    /// Linear input gradient: dX [m, in] = dY [m, out] W, W [out, in].
    pub fn linear_dx(m: usize, out: usize, inp: usize) -> Self {
        Self::unbatched(m, inp, out, (out, 1), (1, inp))
    }
    /// Linear weight gradient: dW [out, in] (+)= dY^T X with dY [m, out], X [m, in];
    /// `accumulate` adds to the existing dW (beta = 1).
    pub fn linear_dw(m: usize, out: usize, inp: usize, accumulate: bool) -> Self {
        let mut p = Self::unbatched(out, inp, m, (1, out), (1, inp));
        p.beta = if accumulate { 1.0 } else { 0.0 };
        p
    }
}

/// Grid: (column tiles, row tiles, batches). `batches` = outer x inner.
pub fn gemm_launch(c: u64, a: u64, b: u64, bias: u64, p: &GemmParams, batches: usize) -> Launch {
    let grid = (
        (p.n as usize).div_ceil(TILE).max(1) as u32,
        (p.m as usize).div_ceil(TILE).max(1) as u32,
        batches.max(1) as u32,
    );
    let cfg = LaunchCfg {
        grid,
        block: (THREADS, 1, 1),
        smem_bytes: 0,
    };
    Launch {
        module: MODULE,
        kernel: "gemm_f32",
        cfg,
        args: vec![
            KArg::Ptr(c),
            KArg::Ptr(a),
            KArg::Ptr(b),
            KArg::Ptr(bias),
            KArg::pod(p),
        ],
    }
}

/// Elements an operand must hold: the largest offset addressed, plus one.
fn extent(
    rows: u32,
    ld_r: u32,
    cols: u32,
    ld_c: u32,
    outer: (usize, u32),
    inner: (usize, u32),
) -> usize {
    if rows == 0 || cols == 0 {
        return 0;
    }
    let last = |n: usize, s: u32| n.saturating_sub(1) * s as usize;
    last(rows as usize, ld_r)
        + last(cols as usize, ld_c)
        + last(outer.0, outer.1)
        + last(inner.0, inner.1)
        + 1
}

/// Run `c = alpha * a b^T + bias + beta * c` on the device into an existing buffer `c`, over
/// `batches` = outer x `p.batch_inner` batches.
pub fn gemm_into(
    c: &mut CudaStorage,
    a: &CudaStorage,
    b: &CudaStorage,
    bias: Option<&CudaStorage>,
    p: &GemmParams,
    batches: usize,
) -> Result<()> {
    if p.batch_inner == 0 || !batches.is_multiple_of(p.batch_inner as usize) {
        return Err(Error::shape(
            "gemm",
            format!("{batches} batches with an inner batch of {}", p.batch_inner),
        ));
    }
    let (outer, inner) = (batches / p.batch_inner as usize, p.batch_inner as usize);
    check_f32(
        "gemm",
        a,
        extent(
            p.m,
            p.lda_m,
            p.k,
            p.lda_k,
            (outer, p.a_outer),
            (inner, p.a_inner),
        ),
    )?;
    check_f32(
        "gemm",
        b,
        extent(
            p.n,
            p.ldb_n,
            p.k,
            p.ldb_k,
            (outer, p.b_outer),
            (inner, p.b_inner),
        ),
    )?;
    check_f32(
        "gemm",
        c,
        extent(p.m, p.ldc_m, p.n, 1, (outer, p.c_outer), (inner, p.c_inner)),
    )?;
    if let Some(bias) = bias {
        check_f32("gemm", bias, p.n as usize)?;
    }
    u32_arg("gemm", batches)?;
    let launch = gemm_launch(
        device_ptr(c, 0),
        device_ptr(a, 0),
        device_ptr(b, 0),
        bias.map_or(0, |s| device_ptr(s, 0)),
        p,
        batches,
    );
    run_on_device(a.device(), &launch)
}

/// Linear forward on the device: Y [m, out] = X [m, in] W^T + bias, W [out, in]. On cuBLAS where
/// it is available on this device (`cuda::blas`), else on the hand-written kernel.
pub fn linear_fwd(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    if !crate::cuda::blas::available(x.device()) {
        return linear_fwd_kernel(x, w, bias, m, out, inp);
    }
    u32_arg("linear", m * out.max(inp))?;
    let mut y = x.device().alloc(DType::F32, m * out)?;
    crate::cuda::blas::sgemm_linear(&mut y, x, w, bias, m, out, inp)?;
    Ok(y)
}

/// `linear_fwd` on the hand-written kernel always (the reference of the cuBLAS path).
pub fn linear_fwd_kernel(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    m: usize,
    out: usize,
    inp: usize,
) -> Result<CudaStorage> {
    u32_arg("linear", m * out.max(inp))?;
    let mut y = x.device().alloc(DType::F32, m * out)?;
    gemm_into(&mut y, x, w, bias, &GemmParams::linear(m, out, inp), 1)?;
    Ok(y)
}

/// Whether the Linear's gradients run on cuBLAS on `dev`: cuBLAS usable and not turned off by
/// `FDM_CUBLAS_GRADIENTS=0`.
fn gradients_on_blas(dev: &crate::cuda::CudaDevice) -> bool {
    crate::cuda::blas_gemm::gradients_requested() && crate::cuda::blas::available(dev)
}

/// `c` = the unbatched product `p` of `a` and `b`: on cuBLAS when `blas` and `p` has a cuBLAS
/// form, else on the hand-written kernel.
fn gemm_maybe_blas(c: &mut CudaStorage, a: &CudaStorage, b: &CudaStorage, p: &GemmParams, blas: bool) -> Result<()> {
    if blas && crate::cuda::blas_gemm::sgemm_args(p).is_some() {
        return crate::cuda::blas_gemm::sgemm_params(c, a, b, p);
    }
    gemm_into(c, a, b, None, p, 1)
}

/// Linear input gradient `dx [m, inp] = g [m, out] w [out, inp]` (cuBLAS where usable, unless
/// `FDM_CUBLAS_GRADIENTS=0`).
pub fn linear_dx(g: &CudaStorage, w: &CudaStorage, m: usize, out: usize, inp: usize) -> Result<CudaStorage> {
    u32_arg("linear_backward_input", m * out.max(inp))?;
    let mut dx = g.device().alloc(DType::F32, m * inp)?;
    gemm_maybe_blas(&mut dx, g, w, &GemmParams::linear_dx(m, out, inp), gradients_on_blas(g.device()))?;
    Ok(dx)
}

/// Linear weight gradient `dw [out, inp] = g [m, out]^T x [m, inp]` (as `linear_dx`).
pub fn linear_dw(g: &CudaStorage, x: &CudaStorage, m: usize, out: usize, inp: usize) -> Result<CudaStorage> {
    u32_arg("linear_backward_weight", m * out.max(inp))?;
    let mut dw = g.device().alloc(DType::F32, out * inp)?;
    gemm_maybe_blas(&mut dw, g, x, &GemmParams::linear_dw(m, out, inp, false), gradients_on_blas(g.device()))?;
    Ok(dw)
}

/// One operand of a batched matrix product as it is stored: rows of `ld` elements, read as the
/// transpose of the stored matrix when `trans`, batch items `batch_stride` elements apart
/// (0 = one matrix shared by the batch).
pub struct MatOperand<'a> {
    pub data: &'a CudaStorage,
    pub trans: bool,
    pub ld: usize,
    pub batch_stride: usize,
}

/// `C[b] = A[b] (m x k) * B[b] (k x n)` for `b < batch`, C dense `[batch, m, n]`.
pub fn matmul(
    a: &MatOperand,
    b: &MatOperand,
    (m, n, k): (usize, usize, usize),
    batch: usize,
) -> Result<CudaStorage> {
    for (what, v) in [
        ("matmul rows", m),
        ("matmul cols", n),
        ("matmul inner dim", k),
        ("matmul output", batch * m * n),
        ("matmul a extent", a.ld * m.max(k) + a.batch_stride * batch),
        ("matmul b extent", b.ld * n.max(k) + b.batch_stride * batch),
    ] {
        u32_arg(what, v)?;
    }
    // The kernel reads A[m][k] at a[m * lda_m + k * lda_k] and B as B[n][k].
    let (lda_m, lda_k) = if a.trans { (1, a.ld) } else { (a.ld, 1) };
    let (ldb_n, ldb_k) = if b.trans { (b.ld, 1) } else { (1, b.ld) };
    let p = GemmParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch_inner: 1,
        lda_m: lda_m as u32,
        lda_k: lda_k as u32,
        ldb_n: ldb_n as u32,
        ldb_k: ldb_k as u32,
        ldc_m: n as u32,
        a_outer: a.batch_stride as u32,
        b_outer: b.batch_stride as u32,
        c_outer: (m * n) as u32,
        alpha: 1.0,
        ..bytemuck::Zeroable::zeroed()
    };
    let mut c = a.data.device().alloc(DType::F32, batch * m * n)?;
    if batch * m * n > 0 {
        gemm_into(&mut c, a.data, b.data, None, &p, batch)?;
    }
    Ok(c)
}
