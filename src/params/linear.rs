//! Parameters of a linear layer `y[rows, out] = x[rows, in] * W^T + b`, with the PyTorch weight
//! layout `W [out, in]` and bias `[out]` (spec §0). `rows` is every leading dim of x flattened
//! (tokens x batch). Shared by the CPU code (`cpu/ops/linear.rs`) and the CUDA launcher.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinearParams {
    pub rows: u32,
    pub in_features: u32,
    pub out_features: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
}

impl LinearParams {
    pub fn new(rows: usize, in_features: usize, out_features: usize, has_bias: bool) -> Self {
        LinearParams { rows: rows as u32, in_features: in_features as u32, out_features: out_features as u32, has_bias: has_bias as u32 }
    }
    /// (rows, in, out) as usize.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.rows as usize, self.in_features as usize, self.out_features as usize)
    }
}
