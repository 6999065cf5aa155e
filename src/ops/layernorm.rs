//! LayerNorm over the last dim (spec §3.2: eps 1e-5, affine weight and bias), as PyTorch
//! `nn.LayerNorm(dim)`: `x [..., D]`, `weight [D]`, `bias [D]` -> `y [..., D]`, biased variance.
//! `layer_norm_with_stats` also returns the per-row `mean` and `rstd` (`[rows]`, rows = numel/D)
//! that `layer_norm_backward` uses to give `(dx, dweight, dbias)`.

use super::prep::{check_u32_len, dense_f32, expect_shape};
use crate::cpu::ops::layernorm as cpu;
use crate::cuda::ops::layernorm as cuda;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::layernorm::LayerNormParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

const OP: &str = "layer_norm";

fn params(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<LayerNormParams> {
    let Some(&d) = x.shape().last() else {
        return Err(Error::shape(OP, "input must have rank >= 1"));
    };
    expect_shape(OP, "weight", weight, &[d])?;
    expect_shape(OP, "bias", bias, &[d])?;
    if eps.is_nan() || eps <= 0.0 {
        return Err(Error::msg(format!("{OP}: eps must be > 0, got {eps}")));
    }
    check_u32_len(OP, x.numel())?;
    let rows = x.numel().checked_div(d).unwrap_or(0);
    Ok(LayerNormParams::new(rows, d, eps))
}

/// `y = (x - mean) / sqrt(var + eps) * weight + bias` over the last dim.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<Tensor> {
    Ok(layer_norm_with_stats(x, weight, bias, eps)?.0)
}

/// `(y, mean [rows], rstd [rows])`.
pub fn layer_norm_with_stats(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    eps: f32,
) -> Result<(Tensor, Tensor, Tensor)> {
    let p = params(x, weight, bias, eps)?;
    super::check_same_device(OP, x, weight)?;
    super::check_same_device(OP, x, bias)?;
    let (x, w, b) = (
        dense_f32(OP, x)?,
        dense_f32(OP, weight)?,
        dense_f32(OP, bias)?,
    );
    match (x.storage(), w.storage(), b.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_), Storage::Cpu(_)) => {
            let rows = p.rows as usize;
            let (mut y, mut mean, mut rstd) =
                (vec![0f32; x.numel()], vec![0f32; rows], vec![0f32; rows]);
            cpu::layernorm_fwd_fast(
                &p,
                x.cpu_f32()?,
                w.cpu_f32()?,
                b.cpu_f32()?,
                &mut y,
                &mut mean,
                &mut rstd,
            );
            Ok((
                Tensor::from_vec(y, x.shape())?,
                Tensor::from_vec(mean, &[rows])?,
                Tensor::from_vec(rstd, &[rows])?,
            ))
        }
        _ => {
            let (rows, d) = (p.rows as usize, p.dim as usize);
            let out = cuda::layernorm_fwd(
                x.cuda_dense()?,
                Some(w.cuda_dense()?),
                Some(b.cuda_dense()?),
                rows,
                d,
                p.eps,
                true,
            )?;
            let (mean, rstd) = out.stats.expect("statistics were requested");
            Ok((
                Tensor::from_cuda(out.y, x.shape())?,
                Tensor::from_cuda(mean, &[rows])?,
                Tensor::from_cuda(rstd, &[rows])?,
            ))
        }
    }
}

/// `(x + a, layer_norm(x + a))` for `x`, `a` of one shape: the transformer's residual add and the
/// LayerNorm after it, for inference: one fused pass, the same bits as the two ops (on CUDA one
/// kernel; on the CPU each row's sum normalised while in cache, `add_layernorm_fwd_fast`).
pub fn add_layer_norm(x: &Tensor, a: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32) -> Result<(Tensor, Tensor)> {
    add_layer_norm_to(x, a, weight, bias, eps, DType::F32)
}

/// `add_layer_norm` with the LayerNorm's output in `y_dtype`: f32, or bf16 (rounded to nearest
/// even, the cast a bf16-weight Linear applies to its input, so such a Linear reading it computes
/// the same numbers and skips the cast). The sum stays f32. On CUDA the rounding happens in the
/// fused kernel; on the CPU after it.
pub fn add_layer_norm_to(x: &Tensor, a: &Tensor, weight: &Tensor, bias: &Tensor, eps: f32, y_dtype: DType) -> Result<(Tensor, Tensor)> {
    const FOP: &str = "add_layer_norm";
    if !matches!(y_dtype, DType::F32 | DType::BF16) {
        return Err(Error::DType { op: "add_layer_norm (output: f32 or bf16)", dtype: y_dtype });
    }
    if x.shape() != a.shape() {
        return Err(Error::shape(FOP, format!("x {:?} and a {:?} must have one shape", x.shape(), a.shape())));
    }
    let p = params(x, weight, bias, eps)?;
    for t in [a, weight, bias] {
        super::check_same_device(FOP, x, t)?;
    }
    let [x, a, w, b] = [x, a, weight, bias].map(|t| dense_f32(FOP, t));
    let (x, a, w, b) = (x?, a?, w?, b?);
    if matches!(x.storage(), Storage::Cpu(_)) {
        let (mut s, mut y) = (vec![0f32; x.numel()], vec![0f32; x.numel()]);
        cpu::add_layernorm_fwd_fast(&p, x.cpu_f32()?, a.cpu_f32()?, w.cpu_f32()?, b.cpu_f32()?, &mut s, &mut y);
        return Ok((Tensor::from_vec(s, x.shape())?, Tensor::from_vec(y, x.shape())?.to_dtype(y_dtype)?));
    }
    let (s, y) = cuda::add_layernorm_fwd(x.cuda_dense()?, a.cuda_dense()?, w.cuda_dense()?, b.cuda_dense()?, (p.rows as usize, p.dim as usize), p.eps, y_dtype)?;
    Ok((Tensor::from_cuda(s, x.shape())?, Tensor::from_cuda(y, x.shape())?))
}

/// `(dx, dweight, dbias)` from the input, weight, the forward's saved `mean`/`rstd` and the
/// output gradient `g` (shape of `x`).
pub fn layer_norm_backward(
    x: &Tensor,
    weight: &Tensor,
    mean: &Tensor,
    rstd: &Tensor,
    g: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let p = params(x, weight, weight, 1.0)?;
    let rows = p.rows as usize;
    expect_shape(OP, "backward: gradient", g, x.shape())?;
    expect_shape(OP, "backward: mean", mean, &[rows])?;
    expect_shape(OP, "backward: rstd", rstd, &[rows])?;
    super::check_same_device(OP, x, g)?;
    super::check_same_device(OP, x, weight)?;
    super::check_same_device(OP, x, mean)?;
    super::check_same_device(OP, x, rstd)?;
    let (x, w, g) = (dense_f32(OP, x)?, dense_f32(OP, weight)?, dense_f32(OP, g)?);
    let (mean, rstd) = (dense_f32(OP, mean)?, dense_f32(OP, rstd)?);
    match (x.storage(), w.storage(), g.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_), Storage::Cpu(_)) => {
            let d = p.dim as usize;
            let (mut dx, mut dw, mut db) = (vec![0f32; x.numel()], vec![0f32; d], vec![0f32; d]);
            let (xs, ws, gs) = (x.cpu_f32()?, w.cpu_f32()?, g.cpu_f32()?);
            cpu::layernorm_bwd_fast(
                &p,
                xs,
                ws,
                mean.cpu_f32()?,
                rstd.cpu_f32()?,
                gs,
                &mut dx,
                &mut dw,
                &mut db,
            );
            Ok((
                Tensor::from_vec(dx, x.shape())?,
                Tensor::from_vec(dw, &[d])?,
                Tensor::from_vec(db, &[d])?,
            ))
        }
        _ => {
            let (rows, d) = (p.rows as usize, p.dim as usize);
            let (dx, dw, db) = cuda::layernorm_bwd(
                g.cuda_dense()?,
                x.cuda_dense()?,
                (mean.cuda_dense()?, rstd.cuda_dense()?),
                Some(w.cuda_dense()?),
                rows,
                d,
            )?;
            Ok((
                Tensor::from_cuda(dx, x.shape())?,
                Tensor::from_cuda(dw, &[d])?,
                Tensor::from_cuda(db, &[d])?,
            ))
        }
    }
}
