//! Autograd node for the multi-head self-attention core (spec §3.2): q, k, v `[B, L, H*Dh]`
//! in, `[B, L, H*Dh]` out. The forward keeps its output and per-row log-sum-exp so the
//! backward rebuilds the probabilities block by block instead of storing them.

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::ops::attention as ops;

/// softmax(q k^T / sqrt(Dh)) v with `heads` heads, recorded on the tape.
pub fn attention(tape: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    let (out, lse) = ops::attention_with_lse(q.value(), k.value(), v.value(), heads)?;
    let (qt, kt, vt, ot) = (
        q.value().clone(),
        k.value().clone(),
        v.value().clone(),
        out.clone(),
    );
    Ok(tape.record(
        out,
        &[q, k, v],
        Box::new(move |g| {
            let (dq, dk, dv) = ops::attention_backward(&qt, &kt, &vt, &ot, &lse, g, heads)?;
            Ok(vec![Some(dq), Some(dk), Some(dv)])
        }),
    ))
}

/// The bf16 attention of inference (`ops::attention_bf16`): no backward, so an error where an
/// input needs a gradient.
pub fn attention_bf16(tape: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    if [q, k, v].iter().any(|x| x.requires_grad()) {
        return Err(Error::msg("attention in bf16 precision is inference only: an input needs a gradient (train in f32)"));
    }
    Ok(tape.constant(ops::attention_bf16(q.value(), k.value(), v.value(), heads)?))
}

/// `ops::attention_queries` (queries at positions of their own against every key); inference
/// only.
pub fn attention_queries(tape: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    if [q, k, v].iter().any(|x| x.requires_grad()) {
        return Err(Error::msg("attention_queries is inference only: an input needs a gradient"));
    }
    Ok(tape.constant(ops::attention_queries(q.value(), k.value(), v.value(), heads)?))
}

/// `ops::attention_packed_to` (q, k, v as the column blocks of one fused projection; f32 or bf16
/// numerics; the output in `o_dtype`): inference only, so an error where the input needs a
/// gradient.
pub fn attention_packed(tape: &Tape, qkv: &Var, heads: usize, bf16: bool, o_dtype: crate::dtype::DType) -> Result<Var> {
    if qkv.requires_grad() {
        return Err(Error::msg("attention on a fused q/k/v projection is inference only: its input needs a gradient"));
    }
    Ok(tape.constant(ops::attention_packed_to(qkv.value(), heads, bf16, o_dtype)?))
}
