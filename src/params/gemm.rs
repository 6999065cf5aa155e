//! Parameters of one (batched) single-precision GEMM, shared by the CPU code
//! (`cpu/ops/gemm.rs`) and, later, passed by value to the CUDA kernel.
//!
//! `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C[m,n]`, all matrices row-major with
//! leading dimensions (elements between consecutive rows of the *stored* matrix):
//! * `op(A) = A` (stored `[m, lda]`) when `trans_a == 0`, `A^T` (stored `[k, lda]`) otherwise;
//! * `op(B) = B` (stored `[k, ldb]`) when `trans_b == 0`, `B^T` (stored `[n, ldb]`) otherwise;
//! * `C` stored `[m, ldc]`. With `beta == 0` the old contents of C are never read (NaN-safe).
//!
//! Batched: `batch` independent products; matrix `i` of A starts at `i * stride_a` (likewise B,
//! C). A stride of 0 shares one matrix across the batch (e.g. one weight for many images).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    /// 0: A as stored; 1: A transposed.
    pub trans_a: u32,
    /// 0: B as stored; 1: B transposed.
    pub trans_b: u32,
    pub alpha: f32,
    pub beta: f32,
    pub batch: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_c: u32,
}

/// A size as u32, panicking with its name when it does not fit (the kernels index in u32).
fn to_u32(v: usize, what: &str) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| panic!("gemm: {what} = {v} does not fit in u32"))
}

impl GemmParams {
    /// Dense row-major `C = A * B` with no transposes, alpha 1, beta 0, batch 1.
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        GemmParams {
            m: to_u32(m, "m"),
            n: to_u32(n, "n"),
            k: to_u32(k, "k"),
            lda: k as u32,
            ldb: n as u32,
            ldc: n as u32,
            trans_a: 0,
            trans_b: 0,
            alpha: 1.0,
            beta: 0.0,
            batch: 1,
            // Unused while batch == 1 (`batched` sets real strides, checked).
            stride_a: (m * k).min(u32::MAX as usize) as u32,
            stride_b: (k * n).min(u32::MAX as usize) as u32,
            stride_c: (m * n).min(u32::MAX as usize) as u32,
        }
    }
    /// Dense operands with the given transposes: leading dimensions follow the stored shapes.
    pub fn with_trans(m: usize, n: usize, k: usize, trans_a: bool, trans_b: bool) -> Self {
        let mut p = GemmParams::new(m, n, k);
        p.trans_a = trans_a as u32;
        p.trans_b = trans_b as u32;
        p.lda = if trans_a { m as u32 } else { k as u32 };
        p.ldb = if trans_b { k as u32 } else { n as u32 };
        p
    }
    pub fn alpha(mut self, alpha: f32) -> Self {
        self.alpha = alpha;
        self
    }
    /// `beta = 1` accumulates into C (`C += A*B`).
    pub fn beta(mut self, beta: f32) -> Self {
        self.beta = beta;
        self
    }
    pub fn leading_dims(mut self, lda: usize, ldb: usize, ldc: usize) -> Self {
        self.lda = to_u32(lda, "lda");
        self.ldb = to_u32(ldb, "ldb");
        self.ldc = to_u32(ldc, "ldc");
        self
    }
    /// `batch` products with the given element strides between consecutive matrices.
    pub fn batched(mut self, batch: usize, stride_a: usize, stride_b: usize, stride_c: usize) -> Self {
        self.batch = to_u32(batch, "batch");
        self.stride_a = to_u32(stride_a, "stride_a");
        self.stride_b = to_u32(stride_b, "stride_b");
        self.stride_c = to_u32(stride_c, "stride_c");
        self
    }

    pub fn is_trans_a(&self) -> bool {
        self.trans_a != 0
    }
    pub fn is_trans_b(&self) -> bool {
        self.trans_b != 0
    }
    /// Rows of the stored A and B (their row length is the leading dimension).
    fn stored_rows(&self) -> (usize, usize) {
        let a_rows = if self.is_trans_a() { self.k } else { self.m };
        let b_rows = if self.is_trans_b() { self.n } else { self.k };
        (a_rows as usize, b_rows as usize)
    }
    /// Minimum slice lengths (A, B, C) one matrix of the batch needs.
    pub fn matrix_lens(&self) -> (usize, usize, usize) {
        let (ar, br) = self.stored_rows();
        let a_cols = if self.is_trans_a() { self.m } else { self.k } as usize;
        let b_cols = if self.is_trans_b() { self.k } else { self.n } as usize;
        let span = |rows: usize, cols: usize, ld: u32| if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld as usize + cols };
        (span(ar, a_cols, self.lda), span(br, b_cols, self.ldb), span(self.m as usize, self.n as usize, self.ldc))
    }
    /// Minimum slice lengths (A, B, C) for the whole batch.
    pub fn required_lens(&self) -> (usize, usize, usize) {
        let (a, b, c) = self.matrix_lens();
        let last = self.batch.saturating_sub(1) as usize;
        let total = |len: usize, stride: u32| if len == 0 { 0 } else { last * stride as usize + len };
        (total(a, self.stride_a), total(b, self.stride_b), total(c, self.stride_c))
    }
    /// Panics with a clear message when the leading dimensions or slice lengths cannot hold the
    /// matrices described (a bug in the caller: the Tensor-level ops validate user input).
    pub fn check(&self, a_len: usize, b_len: usize, c_len: usize) {
        let a_cols = if self.is_trans_a() { self.m } else { self.k };
        let b_cols = if self.is_trans_b() { self.k } else { self.n };
        assert!(self.lda >= a_cols, "gemm: lda {} < row length {a_cols}", self.lda);
        assert!(self.ldb >= b_cols, "gemm: ldb {} < row length {b_cols}", self.ldb);
        assert!(self.ldc >= self.n, "gemm: ldc {} < n {}", self.ldc, self.n);
        let (a, b, c) = self.required_lens();
        assert!(a_len >= a && b_len >= b && c_len >= c, "gemm: slices ({a_len}, {b_len}, {c_len}) shorter than needed ({a}, {b}, {c}) for {self:?}");
    }
    /// Floating-point operations of the whole batch (2 per multiply-add).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64 * self.batch as f64
    }
}
