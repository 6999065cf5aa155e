//! The sampler's fill state kept on a CUDA device (spec §5.2, issue: no per-pass host round
//! trip). Each pass chooses positions, draws tokens and writes the codebook rows, tokens, known
//! flags and fill order in place with kernels only; the uniforms of every pass are uploaded once
//! at the start, and nothing is read back until `finish`. Same rules as the host-driven loop
//! of `ops::sampling` (positions by largest raw logit, ties lowest position; top-K draw walking
//! kept classes in class-index order), so the tokens equal the CPU sampler's for one seed.
//!
//! Shapes: table f32 `[B, L, C]`; tokens/known/order u32 `[B*L]` (known: non-zero = filled or
//! visible; order: the fill rank of each masked position, `NONE` where never filled).

use crate::cuda::ops::elementwise::strided_copy;
use crate::cuda::ops::sampling::{self as cuda, PickParams, PickTargets, SampleStep};
pub use crate::cuda::ops::sampling::NONE;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Private device copies of the sampler's state (the `&mut self` of `pass` is what makes the
/// in-place kernel writes safe: nothing else holds these buffers).
pub struct DeviceFill {
    table: Tensor,
    tokens: Tensor,
    known: Tensor,
    order: Tensor,
    /// The uniforms of every pass, `[passes, B * n]`.
    uniforms: Tensor,
    /// (B, L, C).
    dims: (usize, usize, usize),
}

/// What a finished fill hands back to the host.
pub struct FillResult {
    pub table: Tensor,
    pub tokens: Vec<u32>,
    /// Per position, the fill rank (`NONE` where not filled).
    pub order: Vec<u32>,
}

/// One pass's sampling rule.
#[derive(Clone, Copy, Debug)]
pub struct PassRule {
    /// Positions per image per pass (n).
    pub per_image: usize,
    pub top_k: usize,
    pub temperature: f32,
}

impl DeviceFill {
    /// Copies of `table` (on a CUDA device), `tokens` and `known` on the table's device, and the
    /// uniforms of all passes (`B * n` per pass, pass after pass; see `pass`) uploaded once.
    pub fn new(table: &Tensor, tokens: &[u32], known: &[bool], uniforms: &[f32]) -> Result<DeviceFill> {
        const OP: &str = "sampler state";
        let &[b, l, c] = table.shape() else {
            return Err(Error::shape(OP, format!("feature table must be B x L x C, got {:?}", table.shape())));
        };
        if tokens.len() != b * l || known.len() != b * l {
            return Err(Error::shape(OP, format!("{} tokens and {} flags for {b} x {l} positions", tokens.len(), known.len())));
        }
        let dense = table.contiguous()?;
        let n = b * l * c;
        let copy = strided_copy(dense.cuda_dense()?, &[n], &[1], 0)?;
        let dev = table.device();
        let u32s = |v: Vec<u32>| Tensor::from_u32(v, &[b * l])?.to_device(&dev);
        Ok(DeviceFill {
            table: Tensor::from_cuda(copy, &[b, l, c])?,
            tokens: u32s(tokens.to_vec())?,
            known: u32s(known.iter().map(|&k| k as u32).collect())?,
            order: u32s(vec![NONE; b * l])?,
            uniforms: Tensor::from_vec(uniforms.to_vec(), &[uniforms.len()])?.to_device(&dev)?,
            dims: (b, l, c),
        })
    }

    /// The current feature table (the transformer's input for the next pass).
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// Pass number `index` on `logits [B, L, V]`: per image the `rule.per_image` (n) most
    /// confident unknown positions, a token each drawn with uniform `index * B * n + b * n + j`
    /// of those given to `new` (slots past an image's unknown positions are skipped: their
    /// uniforms are ignored), and the codebook rows (`codebook [rows >= V, C]`) written in. The
    /// picks' fill ranks in every image start at `index * n`.
    pub fn pass(&mut self, logits: &Tensor, codebook: &Tensor, rule: PassRule, index: usize) -> Result<()> {
        const OP: &str = "sampler pass";
        let (b, l, c) = self.dims;
        let n = rule.per_image.min(l);
        let &[lb, ll, v] = logits.shape() else {
            return Err(Error::shape(OP, format!("logits must be B x L x V, got {:?}", logits.shape())));
        };
        let &[rows, width] = codebook.shape() else {
            return Err(Error::shape(OP, format!("codebook must be rows x C, got {:?}", codebook.shape())));
        };
        let u_offset = index * b * n;
        if (lb, ll) != (b, l) || width != c || rows < v || u_offset + b * n > self.uniforms.numel() {
            return Err(Error::shape(OP, format!("logits {:?}, codebook {:?}, pass {index} of {} uniforms for a {b} x {l} x {c} table and {n} picks per image", logits.shape(), codebook.shape(), self.uniforms.numel())));
        }
        let (logits, codebook) = (logits.contiguous()?, codebook.contiguous()?);
        let step = SampleStep { b, l, v, n, k: rule.top_k.min(v), temperature: rule.temperature };
        let (positions, drawn) = cuda::sample_step(logits.cuda_dense()?, self.known.cuda_dense()?, self.uniforms.cuda_dense()?, u_offset, step)?;
        let targets = PickTargets { table: self.table.cuda_dense()?, tokens: self.tokens.cuda_dense()?, known: self.known.cuda_dense()?, order: self.order.cuda_dense()? };
        let order_base = u32::try_from(index * n).map_err(|_| Error::shape(OP, "fill rank beyond u32"))?;
        let p = PickParams { picks: (b * n) as u32, per_image: n as u32, seq_len: l as u32, width: c as u32, order_base };
        cuda::apply_picks(&targets, codebook.cuda_dense()?, rows, &positions, &drawn, &p)
    }

    /// The table, and the tokens and fill ranks read back to the host (waits for the device).
    pub fn finish(self) -> Result<FillResult> {
        Ok(FillResult { table: self.table, tokens: self.tokens.to_vec_u32()?, order: self.order.to_vec_u32()? })
    }
}
