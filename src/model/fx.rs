//! The handful of autograd functions the model code uses, under one short name each, so the
//! model files read like the spec's equations; each reports to the profiler.

pub use crate::autograd::{Tape, Var};
use crate::autograd::{attention as att, binary, patch, shape, unary};
use crate::error::Result;
use crate::profile::op;

/// Multi-head self-attention core on projected q, k, v (B x L x H*Dh).
pub fn attention(t: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    let s = q.shape();
    let macs = 2 * (s[0] * s[1] * s[1] * s[2]) as u64; // Q K^T and P V
    op("attention", || att::attention(t, q, k, v, heads), |_| macs)
}

/// The same core in bf16 (inference under `--precision bf16`; tensor cores on CUDA).
pub fn attention_bf16(t: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    let s = q.shape();
    let macs = 2 * (s[0] * s[1] * s[1] * s[2]) as u64;
    op("attention_bf16", || att::attention_bf16(t, q, k, v, heads), |_| macs)
}

/// `attention` (or with `bf16`, `attention_bf16`) of q, k, v packed in one fused projection
/// (B x L x 3*H*Dh), the output in `o_dtype` (f32, or bf16 for a bf16-weight Linear); inference
/// only.
pub fn attention_packed(t: &Tape, qkv: &Var, heads: usize, bf16: bool, o_dtype: crate::DType) -> Result<Var> {
    let s = qkv.shape();
    let macs = 2 * (s[0] * s[1] * s[1] * (s[2] / 3)) as u64;
    op(if bf16 { "attention_bf16" } else { "attention" }, || att::attention_packed(t, qkv, heads, bf16, o_dtype), |_| macs)
}

/// `attention` of q (B x U x H*Dh) at U positions against the keys and values of all L
/// (B x L x H*Dh); inference only, on the CPU.
pub fn attention_queries(t: &Tape, q: &Var, k: &Var, v: &Var, heads: usize) -> Result<Var> {
    let (sq, sk) = (q.shape(), k.shape());
    let macs = 2 * (sq[0] * sq[1] * sk[1] * sq[2]) as u64;
    op("attention", || att::attention_queries(t, q, k, v, heads), |_| macs)
}

/// Rows `idx` of x seen as rows x width (`x`'s last dimension), as `shape`; inference only.
pub fn gather_rows(t: &Tape, x: &Var, idx: &[u32], shape: &[usize]) -> Result<Var> {
    op("gather_rows", || crate::autograd::index::gather_rows(t, x, idx, shape), |_| 0)
}

pub fn add(t: &Tape, a: &Var, b: &Var) -> Result<Var> {
    op("add", || binary::add(t, a, b), |_| 0)
}

pub fn mul(t: &Tape, a: &Var, b: &Var) -> Result<Var> {
    op("mul", || binary::mul(t, a, b), |_| 0)
}

pub fn relu(t: &Tape, x: &Var) -> Result<Var> {
    op("relu", || unary::relu(t, x), |_| 0)
}

pub fn gelu2(t: &Tape, x: &Var) -> Result<Var> {
    op("gelu2", || unary::gelu2(t, x), |_| 0)
}

pub fn concat(t: &Tape, xs: &[&Var], dim: usize) -> Result<Var> {
    op("concat", || shape::concat(t, xs, dim), |_| 0)
}

pub fn patch_unfold(t: &Tape, x: &Var, p: usize) -> Result<Var> {
    op("patch_unfold", || patch::patch_unfold(t, x, p), |_| 0)
}

pub fn permute(t: &Tape, x: &Var, dims: &[usize]) -> Result<Var> {
    op("permute", || shape::permute(t, x, dims), |_| 0)
}

pub fn reshape(t: &Tape, x: &Var, dims: &[usize]) -> Result<Var> {
    shape::reshape(t, x, dims)
}
