//! Parameters of LayerNorm over the last dim: `x [rows, dim]`, affine `weight [dim]`,
//! `bias [dim]`; biased variance and `eps` inside the square root, as PyTorch (spec §3.2: eps 1e-5).

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LayerNormParams {
    pub rows: u32,
    pub dim: u32,
    pub eps: f32,
}

impl LayerNormParams {
    pub fn new(rows: usize, dim: usize, eps: f32) -> Self {
        LayerNormParams {
            rows: rows as u32,
            dim: dim as u32,
            eps,
        }
    }
    pub fn dims(&self) -> (usize, usize) {
        (self.rows as usize, self.dim as usize)
    }
}
