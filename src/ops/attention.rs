//! Tensor-level multi-head self-attention core (spec §3.2): q, k, v `[B, L, H*Dh]` (already
//! projected; head h = channels h*Dh..(h+1)*Dh), scale 1/sqrt(Dh), softmax over keys, output
//! `[B, L, H*Dh]`. The forward can also return the per-row log-sum-exp `[B, H, L]` that the
//! backward uses to rebuild the probabilities without storing them.

use super::argcheck::{expect_f32, expect_rank, expect_same_device, expect_same_shape};
use crate::cpu::ops::{attention as cpu_fwd, attention_backward as cpu_bwd};
use crate::cuda::ops::attention as cuda;
use crate::cuda::ops::attention_backward as cuda_bwd;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::attention::AttentionParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

const OP: &str = "attention";

/// Checks shapes and builds the params of q, k, v `[B, L, heads*Dh]`.
fn params(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<AttentionParams> {
    expect_rank(OP, "q", q, 3)?;
    expect_same_shape(OP, "q", q, "k", k)?;
    expect_same_shape(OP, "q", q, "v", v)?;
    for t in [q, k, v] {
        expect_f32(OP, t)?;
    }
    expect_same_device(OP, &[q, k, v])?;
    let (b, l, w) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    head_params(OP, b, l, w, heads)
}

/// The params of `b` sequences of `l` keys, `w` channels split into `heads` heads; an error
/// naming `op` where `w` does not split.
fn head_params(op: &'static str, b: usize, l: usize, w: usize, heads: usize) -> Result<AttentionParams> {
    if heads == 0 || !w.is_multiple_of(heads) {
        return Err(Error::shape(op, format!("width {w} is not a multiple of heads = {heads}")));
    }
    Ok(AttentionParams::new(b, l, heads, w / heads))
}

/// softmax(q k^T / sqrt(Dh)) v per head.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    Ok(attention_with_lse(q, k, v, heads)?.0)
}

/// The output and the log-sum-exp of every score row (`[B, heads, L]`), for the backward.
pub fn attention_with_lse(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor)> {
    let p = params(q, k, v, heads)?;
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    match q.storage() {
        Storage::Cpu(_) => {
            let mut out = vec![0f32; p.numel()];
            let mut lse = vec![0f32; p.lse_numel()];
            cpu_fwd::attention_fast(
                &p,
                q.cpu_f32()?,
                k.cpu_f32()?,
                v.cpu_f32()?,
                &mut out,
                &mut lse,
            );
            let lse_shape = [p.batch as usize, heads, p.seq_len as usize];
            Ok((
                Tensor::from_vec(out, q.shape())?,
                Tensor::from_vec(lse, &lse_shape)?,
            ))
        }
        Storage::Cuda(_) => {
            let (b, l, dh) = (p.batch as usize, p.seq_len as usize, p.head_dim as usize);
            let (o, lse) = cuda::attention_fwd_dim(
                q.cuda_dense()?,
                k.cuda_dense()?,
                v.cuda_dense()?,
                b,
                l,
                heads,
                dh,
            )?;
            Ok((
                Tensor::from_cuda(o, q.shape())?,
                Tensor::from_cuda(lse, &[b, heads, l])?,
            ))
        }
    }
}

/// The attention of `--precision bf16` inference: q, k and v rounded to bf16 (nearest even),
/// f32 softmax and sums. On CUDA the tensor-core kernel (`attention_fwd_bf16`, which also rounds
/// the probabilities to bf16 for the P V product: a relative 2^-9 per weight, not mirrored here);
/// on the CPU the f32 attention of the rounded q, k, v. No log-sum-exp: there is no backward.
pub fn attention_bf16(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    let p = params(q, k, v, heads)?;
    match q.storage() {
        Storage::Cpu(_) => {
            let round = |t: &Tensor| t.to_dtype(crate::DType::BF16)?.to_dtype(crate::DType::F32);
            attention(&round(q)?, &round(k)?, &round(v)?, heads)
        }
        Storage::Cuda(_) => {
            let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
            let (b, l, dh) = (p.batch as usize, p.seq_len as usize, p.head_dim as usize);
            let o = cuda::attention_fwd_bf16(q.cuda_dense()?, k.cuda_dense()?, v.cuda_dense()?, b, l, heads, dh)?;
            Tensor::from_cuda(o, q.shape())
        }
    }
}

/// The attention of q, k, v given as the three column blocks of one fused projection `qkv`
/// `[B, L, 3*W]` (query, key, value in that order): `[B, L, W]`, in f32 (`attention`'s numerics)
/// or, with `bf16`, `attention_bf16`'s. Inference only (no log-sum-exp, no backward). On CUDA the
/// kernels read the blocks in place (`attention_fwd_packed`, `attention_fwd_bf16_packed`); on the
/// CPU they are sliced out.
pub fn attention_packed(qkv: &Tensor, heads: usize, bf16: bool) -> Result<Tensor> {
    attention_packed_to(qkv, heads, bf16, DType::F32)
}

/// `attention_packed` with the output in `o_dtype`: f32, or bf16 (rounded to nearest even, as a
/// bf16-weight Linear rounds its input: that Linear then reads it without its cast). On CUDA
/// the bf16 kernels write bf16 directly where they cover all keys in one pass; elsewhere the
/// f32 result is converted.
pub fn attention_packed_to(qkv: &Tensor, heads: usize, bf16: bool, o_dtype: DType) -> Result<Tensor> {
    if !matches!(o_dtype, DType::F32 | DType::BF16) {
        return Err(Error::DType { op: "attention_packed (output: f32 or bf16)", dtype: o_dtype });
    }
    expect_rank(OP, "qkv", qkv, 3)?;
    let (b, l, w3) = (qkv.shape()[0], qkv.shape()[1], qkv.shape()[2]);
    if w3 % 3 != 0 {
        return Err(Error::shape(OP, format!("fused q, k, v width {w3} is not a multiple of 3")));
    }
    let w = w3 / 3;
    match qkv.storage() {
        Storage::Cpu(_) => {
            let [q, k, v] = [0, 1, 2].map(|i| qkv.narrow(2, i * w, w));
            let (q, k, v) = (q?, k?, v?);
            let o = if bf16 { attention_bf16(&q, &k, &v, heads)? } else { attention(&q, &k, &v, heads)? };
            o.to_dtype(o_dtype)
        }
        Storage::Cuda(_) => {
            expect_f32(OP, qkv)?;
            let d = head_params(OP, b, l, w, heads)?.head_dim as usize;
            let qkv = qkv.contiguous()?;
            let s = qkv.cuda_dense()?;
            if bf16 {
                return Tensor::from_cuda(cuda::attention_fwd_bf16_packed(s, b, l, heads, d, o_dtype)?, &[b, l, w]);
            }
            Tensor::from_cuda(cuda::attention_fwd_packed(s, b, l, heads, d)?, &[b, l, w])?.to_dtype(o_dtype)
        }
    }
}

/// `attention` for queries at positions of their own: q `[B, U, W]` against k and v
/// `[B, L, W]`, output `[B, U, W]`. A query row gets the bits `attention` gives the same row in a
/// full call (the same products and softmax per query). Inference only, and on the CPU only:
/// the sampler uses it to run the transformer's last block only at the positions whose logits
/// it reads; on CUDA the whole pass runs as one captured graph of full-size kernels instead.
pub fn attention_queries(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "attention_queries";
    for (name, t) in [("q", q), ("k", k), ("v", v)] {
        expect_rank(OP, name, t, 3)?;
        expect_f32(OP, t)?;
    }
    expect_same_shape(OP, "k", k, "v", v)?;
    expect_same_device(OP, &[q, k, v])?;
    let (b, u, w) = (q.shape()[0], q.shape()[1], q.shape()[2]);
    if k.shape()[0] != b || k.shape()[2] != w {
        return Err(Error::shape(OP, format!("q {:?} and k {:?} differ in batch or width", q.shape(), k.shape())));
    }
    let p = head_params(OP, b, k.shape()[1], w, heads)?;
    if !matches!(q.storage(), Storage::Cpu(_)) {
        return Err(Error::msg("attention_queries runs on the CPU only (CUDA runs the full attention)"));
    }
    let (q, k, v) = (q.contiguous()?, k.contiguous()?, v.contiguous()?);
    let mut out = vec![0f32; b * u * w];
    let mut lse = vec![0f32; b * heads * u];
    cpu_fwd::attention_queries_fast(&p, u, q.cpu_f32()?, k.cpu_f32()?, v.cpu_f32()?, &mut out, &mut lse);
    Tensor::from_vec(out, &[b, u, w])
}

/// Gradients (dq, dk, dv) from the forward's inputs, `out`, `lse` and the output gradient.
pub fn attention_backward(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    out: &Tensor,
    lse: &Tensor,
    dout: &Tensor,
    heads: usize,
) -> Result<(Tensor, Tensor, Tensor)> {
    const BOP: &str = "attention_backward";
    let p = params(q, k, v, heads)?;
    expect_same_shape(BOP, "q", q, "out", out)?;
    expect_same_shape(BOP, "q", q, "dout", dout)?;
    let lse_shape = [p.batch as usize, heads, p.seq_len as usize];
    if lse.shape() != lse_shape {
        return Err(Error::shape(
            BOP,
            format!("lse {:?} must be {lse_shape:?}", lse.shape()),
        ));
    }
    for t in [out, lse, dout] {
        expect_f32(BOP, t)?;
    }
    expect_same_device(BOP, &[q, out, lse, dout])?;
    let [q, k, v, out, lse, dout] = [q, k, v, out, lse, dout].map(|t| t.contiguous());
    let (q, k, v, out, lse, dout) = (q?, k?, v?, out?, lse?, dout?);
    match q.storage() {
        Storage::Cpu(_) => {
            let n = p.numel();
            let (mut dq, mut dk, mut dv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
            cpu_bwd::attention_backward_fast(
                &p,
                q.cpu_f32()?,
                k.cpu_f32()?,
                v.cpu_f32()?,
                out.cpu_f32()?,
                lse.cpu_f32()?,
                dout.cpu_f32()?,
                &mut dq,
                &mut dk,
                &mut dv,
            );
            let shape = q.shape();
            Ok((
                Tensor::from_vec(dq, shape)?,
                Tensor::from_vec(dk, shape)?,
                Tensor::from_vec(dv, shape)?,
            ))
        }
        Storage::Cuda(_) => {
            let (b, l, dh) = (p.batch as usize, p.seq_len as usize, p.head_dim as usize);
            // Head dims 64 and 32 have kernels; the launcher names the supported ones otherwise.
            let [q, k, v, out, dout, lse] = [&q, &k, &v, &out, &dout, &lse].map(|t| t.cuda_dense());
            let (dq, dk, dv) = cuda_bwd::attention_bwd_dim(q?, k?, v?, out?, dout?, lse?, b, l, heads, dh)?;
            let shape = [b, l, heads * dh];
            Ok((Tensor::from_cuda(dq, &shape)?, Tensor::from_cuda(dk, &shape)?, Tensor::from_cuda(dv, &shape)?))
        }
    }
}
