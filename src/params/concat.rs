//! Parameters of the block copy behind concat and the backward of narrow: a dense source viewed
//! as `[outer, src_inner]` is written into a dense destination viewed as `[outer, dst_inner]` at
//! column `dst_offset` (`src_inner + dst_offset <= dst_inner`). For concat along dim `d` of inputs
//! of shape `[..., n_i, rest...]`: `outer = prod(shape[..d])`, `src_inner = n_i * prod(rest)`,
//! `dst_inner = sum(n_i) * prod(rest)`, `dst_offset = (n_0 + .. + n_{i-1}) * prod(rest)`.

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockCopyParams {
    pub outer: u32,
    pub src_inner: u32,
    pub dst_inner: u32,
    pub dst_offset: u32,
}

impl BlockCopyParams {
    pub fn new(outer: usize, src_inner: usize, dst_inner: usize, dst_offset: usize) -> Self {
        BlockCopyParams {
            outer: outer as u32,
            src_inner: src_inner as u32,
            dst_inner: dst_inner as u32,
            dst_offset: dst_offset as u32,
        }
    }
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (
            self.outer as usize,
            self.src_inner as usize,
            self.dst_inner as usize,
            self.dst_offset as usize,
        )
    }
}
