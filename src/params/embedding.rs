//! Parameters of the embedding lookup: `table [vocab, dim]`, `n` u32 indices -> `out [n, dim]`.

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EmbeddingParams {
    pub n: u32,
    pub vocab: u32,
    pub dim: u32,
}

impl EmbeddingParams {
    pub fn new(n: usize, vocab: usize, dim: usize) -> Self {
        EmbeddingParams {
            n: n as u32,
            vocab: vocab as u32,
            dim: dim as u32,
        }
    }
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.n as usize, self.vocab as usize, self.dim as usize)
    }
}
