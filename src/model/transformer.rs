//! UQ-Transformer (spec §3): `emb_proj` (Linear e_dim -> D) of the un-quantised feature of every
//! token, plus a learned, zero-initialised position embedding; pre-LN blocks
//! `x += Attn(LN1 x)`, `x += MLP(LN2 x)` with GELU2 (x sigmoid(1.702 x)); final LayerNorm and
//! `to_logits` (D -> 512 classes = the unmasked half of the codebook). Non-causal, no dropout.
//! Linear weights start N(0, 0.02), biases 0 (spec §3.4).

use super::fx::{add, attention, attention_bf16, attention_packed, attention_queries, gather_rows, Tape, Var};
use super::presets::TransformerConfig;
use crate::error::{Error, Result};
use crate::DType;
use crate::nn::layers::{Init, LayerNorm, Linear, StackedLinear};
use crate::nn::{Bound, ParamId, ParamStore};
use crate::rng::Rng;

struct Block {
    ln1: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    proj: Linear,
    ln2: LayerNorm,
    fc: Linear,
    out: Linear,
    /// query, key and value as one projection, built for inference (`Transformer::restack`).
    qkv: Option<StackedLinear>,
}

pub struct Transformer {
    cfg: TransformerConfig,
    emb_proj: Linear,
    pos_emb: ParamId,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    to_logits: Linear,
    /// Stack each block's query/key/value weights for inference even in f32 (`set_inference`).
    inference: bool,
}

impl Block {
    fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &TransformerConfig) -> Result<Self> {
        let d = c.n_embd;
        let lin = |s: &mut ParamStore, r: &mut Rng, n: &str, i: usize, o: usize| Linear::new(s, r, &format!("{name}.{n}"), i, o, Init::Normal(0.02));
        Ok(Block {
            ln1: LayerNorm::new(store, &format!("{name}.ln1"), d)?,
            query: lin(store, rng, "attn.query", d, d)?,
            key: lin(store, rng, "attn.key", d, d)?,
            value: lin(store, rng, "attn.value", d, d)?,
            proj: lin(store, rng, "attn.proj", d, d)?,
            ln2: LayerNorm::new(store, &format!("{name}.ln2"), d)?,
            fc: lin(store, rng, "mlp.0", d, c.mlp_ratio * d)?,
            out: lin(store, rng, "mlp.2", c.mlp_ratio * d, d)?,
            qkv: None,
        })
    }

    /// One block on the residual stream `x` and its normalised `h = ln1(x)`; returns the stream
    /// after the block and `next(stream)` (`next`: the following block's ln1, or the final
    /// LayerNorm, paired with the dtype its output is wanted in: bf16 where only bf16-weight
    /// Linears read it), so each residual add and the LayerNorm after it can run as one op.
    fn forward(&self, t: &Tape, p: &Bound, x: &Var, h: &Var, next: (&LayerNorm, DType), n_head: usize) -> Result<(Var, Var)> {
        let query_weight = p.var(self.query.weight).value();
        // bf16 Linear weights mean `--precision bf16` inference: the attention runs in bf16 too.
        // Inference runs it on the stacked q/k/v projection where one is built for these weights.
        // The stack carries no gradient: where one is needed (to h or to a projection's
        // parameters) the separate projections run.
        let no_grad = !h.requires_grad() && ![&self.query, &self.key, &self.value].iter().any(|l| l.needs_grad(p));
        let a = match &self.qkv {
            Some(qkv) if no_grad && qkv.matches(query_weight) => {
                let bf16 = query_weight.dtype() == DType::BF16;
                attention_packed(t, &qkv.forward(t, h)?, n_head, bf16, input_dtype(p, &self.proj))?
            }
            _ => {
                let (q, k, v) = (self.query.forward(t, p, h)?, self.key.forward(t, p, h)?, self.value.forward(t, p, h)?);
                if query_weight.dtype() == crate::DType::BF16 {
                    attention_bf16(t, &q, &k, &v, n_head)?
                } else {
                    attention(t, &q, &k, &v, n_head)?
                }
            }
        };
        let a = self.proj.forward(t, p, &a)?;
        let (x, h) = self.ln2.add_forward_to(t, p, x, &a, input_dtype(p, &self.fc))?;
        let m = self.out.forward_after_gelu2(t, p, &self.fc.forward(t, p, &h)?)?;
        next.0.add_forward_to(t, p, &x, &m, next.1)
    }
}

impl Block {
    /// `forward` of the last block where only the rows `rows` (`u` per sequence, flat
    /// `b * L + position` indices) are read afterwards: keys and values at every position,
    /// queries, projection, MLP and `next` only at those rows. Returns the stream and `next` of
    /// those rows, `[B, u, D]`, with the bits `forward` gives them (each row's products and
    /// softmax are the same; `tests/transformer_rows.rs`). f32 inference on the CPU only.
    #[allow(clippy::too_many_arguments)]
    fn forward_at(&self, t: &Tape, p: &Bound, x: &Var, h: &Var, rows: &[u32], u: usize, next: (&LayerNorm, DType), n_head: usize) -> Result<(Var, Var)> {
        let (b, d) = (x.shape()[0], x.shape()[2]);
        let q = self.query.forward(t, p, &gather_rows(t, h, rows, &[b, u, d])?)?;
        let (k, v) = (self.key.forward(t, p, h)?, self.value.forward(t, p, h)?);
        let a = self.proj.forward(t, p, &attention_queries(t, &q, &k, &v, n_head)?)?;
        let x = gather_rows(t, x, rows, &[b, u, d])?;
        let (x, h) = self.ln2.add_forward_to(t, p, &x, &a, DType::F32)?;
        let m = self.out.forward_after_gelu2(t, p, &self.fc.forward(t, p, &h)?)?;
        next.0.add_forward_to(t, p, &x, &m, next.1)
    }
}

/// The dtype a LayerNorm whose only reader is `reader` writes: bf16 where the Linear's weight is
/// bf16 (it rounds its input to bf16 anyway: the same numbers without its cast), else f32.
fn input_dtype(p: &Bound, reader: &Linear) -> DType {
    match p.var(reader.weight).value().dtype() {
        DType::BF16 => DType::BF16,
        _ => DType::F32,
    }
}

impl Transformer {
    pub fn new(store: &mut ParamStore, rng: &mut Rng, name: &str, c: &TransformerConfig) -> Result<Self> {
        let emb_proj = Linear::new(store, rng, &format!("{name}.emb_proj"), c.embed_dim, c.n_embd, Init::Normal(0.02))?;
        let pos_emb = store.add(format!("{name}.pos_emb"), crate::Tensor::zeros(&[1, c.seq_len, c.n_embd]))?;
        let blocks = (0..c.n_layer)
            .map(|i| Block::new(store, rng, &format!("{name}.blocks.{i}"), c))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(store, &format!("{name}.layer_norm"), c.n_embd)?;
        let to_logits = Linear::new(store, rng, &format!("{name}.to_logits"), c.n_embd, c.vocab, Init::Normal(0.02))?;
        Ok(Transformer { cfg: c.clone(), emb_proj, pos_emb, blocks, ln_f, to_logits, inference: false })
    }

    pub fn config(&self) -> &TransformerConfig {
        &self.cfg
    }

    /// The weights of every Linear layer (`emb_proj`, each block's q/k/v/proj and MLP, `to_logits`):
    /// nearly all of the transformer's parameters and MACs, the ones `Precision::Bf16` stores in
    /// bf16. The position embedding, the LayerNorms and the biases are not among them.
    pub fn linear_weights(&self) -> Vec<ParamId> {
        let mut ids = vec![self.emb_proj.weight];
        for b in &self.blocks {
            ids.extend([b.query.weight, b.key.weight, b.value.weight, b.proj.weight, b.fc.weight, b.out.weight]);
        }
        ids.push(self.to_logits.weight);
        ids
    }

    /// Builds each block's stacked query/key/value projection from `store` (one GEMM, and an
    /// attention that reads its output in place, instead of three GEMMs) where the weights are
    /// bf16 (inference only) or the transformer is set for inference (`set_inference`); drops it
    /// otherwise (training reads the separate parameters, whose values the stack would not follow).
    /// Call after the weights change dtype, device or value.
    pub fn restack(&mut self, store: &ParamStore) -> Result<()> {
        for b in &mut self.blocks {
            let stack = self.inference || store.get(b.query.weight).dtype() == crate::DType::BF16;
            b.qkv = if stack { Some(StackedLinear::stack(store, &[&b.query, &b.key, &b.value])?) } else { None };
        }
        Ok(())
    }

    /// Whether every block runs its query/key/value projections as one stacked GEMM (where no
    /// gradient is needed).
    pub fn is_stacked(&self) -> bool {
        self.blocks.iter().all(|b| b.qkv.is_some())
    }

    /// Sets the transformer for inference (or back) and restacks: with `on`, forwards where no
    /// gradient is needed run the stacked projection in f32 too. A model being trained must not
    /// be set so, since its stacks would keep the weights of the moment they were built.
    pub fn set_inference(&mut self, store: &ParamStore, on: bool) -> Result<()> {
        self.inference = on;
        self.restack(store)
    }

    /// `feat`: B x L x e_dim token features (row-major over the grid) -> logits B x L x vocab.
    pub fn forward(&self, t: &Tape, p: &Bound, feat: &Var) -> Result<Var> {
        self.check_features(feat)?;
        let (_, h) = self.stream(t, p, feat, self.blocks.len())?;
        self.to_logits.forward(t, p, &h)
    }

    /// The logits at `u` positions of each sequence only: `rows[i * u + r]` (< L) is the r-th
    /// position read in sequence i (repeats allowed) -> B x u x vocab, the numbers `forward`
    /// gives at those positions. The sampler reads logits only at unknown positions (a few
    /// percent of the grid late in a fill), so on the CPU in f32 the last block runs its
    /// queries, projection and MLP, and the final LayerNorm and `to_logits` run, at those rows
    /// only (keys and values still at all); elsewhere this is `forward` and a gather. Inference
    /// only: an error where the features or a Linear need a gradient.
    pub fn forward_at(&self, t: &Tape, p: &Bound, feat: &Var, rows: &[u32], u: usize) -> Result<Var> {
        self.check_features(feat)?;
        if feat.requires_grad() || self.linears().any(|l| l.needs_grad(p)) {
            return Err(Error::msg("Transformer::forward_at is inference only: the features or weights need a gradient"));
        }
        let (b, l) = (feat.shape()[0], self.cfg.seq_len);
        if rows.len() != b * u {
            return Err(Error::shape("Transformer::forward_at", format!("{} rows for {b} sequences of {u}", rows.len())));
        }
        if let Some(&bad) = rows.iter().find(|&&r| r as usize >= l) {
            return Err(Error::shape("Transformer::forward_at", format!("position {bad} outside the sequence of {l}")));
        }
        let flat: Vec<u32> = rows.iter().enumerate().map(|(i, &r)| ((i / u.max(1)) * l) as u32 + r).collect();
        let Some(last) = self.blocks.last().filter(|_| self.prunes(p, feat)) else {
            let logits = self.forward(t, p, feat)?;
            let v = logits.shape()[2];
            return gather_rows(t, &logits, &flat, &[b, u, v]);
        };
        let (x, h) = self.stream(t, p, feat, self.blocks.len() - 1)?;
        let next = (&self.ln_f, input_dtype(p, &self.to_logits));
        let (_, h) = last.forward_at(t, p, &x, &h, &flat, u, next, self.cfg.n_head)?;
        self.to_logits.forward(t, p, &h)
    }

    /// Whether `forward_at` can prune the last block: f32 weights and features on the CPU.
    fn prunes(&self, p: &Bound, feat: &Var) -> bool {
        let weight = p.var(self.to_logits.weight).value();
        let f32_weights = self.blocks.iter().all(|b| input_dtype(p, &b.query) == DType::F32) && input_dtype(p, &self.to_logits) == DType::F32;
        f32_weights && matches!(weight.device(), crate::Device::Cpu) && matches!(feat.value().device(), crate::Device::Cpu)
    }

    fn check_features(&self, feat: &Var) -> Result<()> {
        let s = feat.shape();
        if s.len() != 3 || s[1] != self.cfg.seq_len || s[2] != self.cfg.embed_dim {
            return Err(Error::shape(
                "Transformer",
                format!("features {s:?}, expected B x {} x {}", self.cfg.seq_len, self.cfg.embed_dim),
            ));
        }
        Ok(())
    }

    /// The residual stream after the first `n` blocks and the LayerNorm that reads it next (the
    /// following block's ln1, or the final LayerNorm after the last block).
    fn stream(&self, t: &Tape, p: &Bound, feat: &Var, n: usize) -> Result<(Var, Var)> {
        let mut x = add(t, &self.emb_proj.forward(t, p, feat)?, p.var(self.pos_emb))?;
        let mut h = self.blocks.first().map_or(&self.ln_f, |b| &b.ln1).forward(t, p, &x)?;
        for (i, block) in self.blocks.iter().enumerate().take(n) {
            // The next block's ln1 is read by its q/k/v projections (the stack, or the query,
            // key and value Linears, which share one precision); the final LayerNorm by to_logits.
            let next = match self.blocks.get(i + 1) {
                Some(b) => (&b.ln1, input_dtype(p, &b.query)),
                None => (&self.ln_f, input_dtype(p, &self.to_logits)),
            };
            (x, h) = block.forward(t, p, &x, &h, next, self.cfg.n_head)?;
        }
        Ok((x, h))
    }

    /// Every Linear of the transformer.
    fn linears(&self) -> impl Iterator<Item = &Linear> {
        let blocks = self.blocks.iter().flat_map(|b| [&b.query, &b.key, &b.value, &b.proj, &b.fc, &b.out]);
        [&self.emb_proj, &self.to_logits].into_iter().chain(blocks)
    }
}
