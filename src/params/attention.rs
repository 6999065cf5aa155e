//! Parameters of the multi-head self-attention core (spec §3.2): q, k, v and the output are
//! `[batch, seq_len, heads * head_dim]` row-major; head `h` owns channels
//! `h*head_dim .. (h+1)*head_dim`. Scores are `scale * q.k` (scale = 1/sqrt(head_dim)),
//! softmax over keys, no mask (the transformer is bidirectional).

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionParams {
    pub batch: u32,
    pub seq_len: u32,
    pub heads: u32,
    pub head_dim: u32,
    /// Multiplier on q.k; 1/sqrt(head_dim) for the model.
    pub scale: f32,
}

impl AttentionParams {
    /// The model's parameters: scale 1/sqrt(head_dim).
    pub fn new(batch: usize, seq_len: usize, heads: usize, head_dim: usize) -> Self {
        AttentionParams {
            batch: batch as u32,
            seq_len: seq_len as u32,
            heads: heads as u32,
            head_dim: head_dim as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }
    /// Channels per token: heads * head_dim.
    pub fn width(&self) -> usize {
        (self.heads * self.head_dim) as usize
    }
    /// Elements of q (= k = v = output).
    pub fn numel(&self) -> usize {
        self.batch as usize * self.seq_len as usize * self.width()
    }
    /// Elements of the per-row log-sum-exp saved by the forward: `[batch, heads, seq_len]`.
    pub fn lse_numel(&self) -> usize {
        (self.batch * self.heads * self.seq_len) as usize
    }
}
