//! Tensor-level sampling steps of spec §5.2: choose the unknown positions with the largest
//! maximum logit, and draw tokens from the top-K softmax with caller-supplied uniforms (drawn
//! from `rng::Rng` on the host, so every backend draws the same tokens from one seed).
//! Logits are f32 `[L, C]` or `[B, L, C]` (positions) and `[R, C]` or `[B, L, C]` (rows to
//! sample); the small per-position state (known flags, uniforms) and the results live on the
//! host, where the sampling loop keeps them.

use super::argcheck::expect_f32;
use crate::cpu::ops::sampling as cpu;
use crate::cuda::ops::sampling as cuda;
use crate::error::{Error, Result};
use crate::params::sampling::{ChoosePositionsParams, TopkSampleParams};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Logits as (batch, rows per batch, classes): `[R, C]` is one batch.
fn split(op: &'static str, logits: &Tensor) -> Result<(usize, usize, usize)> {
    expect_f32(op, logits)?;
    match *logits.shape() {
        [r, c] => Ok((1, r, c)),
        [b, r, c] => Ok((b, r, c)),
        _ => Err(Error::shape(
            op,
            format!(
                "logits must be [L, C] or [B, L, C], got {:?}",
                logits.shape()
            ),
        )),
    }
}

/// For each batch item, the `k` unknown positions with the largest maximum logit (descending;
/// ties: lowest position first). `known` has one flag per position (`B*L`, row-major).
pub fn choose_positions(logits: &Tensor, known: &[bool], k: usize) -> Result<Vec<Vec<u32>>> {
    const OP: &str = "choose_positions";
    let (b, l, c) = split(OP, logits)?;
    if known.len() != b * l {
        return Err(Error::shape(
            OP,
            format!("{} known flags for {b} x {l} positions", known.len()),
        ));
    }
    if k == 0 {
        return Ok(vec![Vec::new(); b]);
    }
    let logits = logits.contiguous()?;
    match logits.storage() {
        Storage::Cpu(_) => {
            let data = logits.cpu_f32()?;
            let p = ChoosePositionsParams {
                seq_len: l as u32,
                classes: c as u32,
                k: k as u32,
            };
            Ok((0..b)
                .map(|i| {
                    cpu::choose_positions_fast(
                        &p,
                        &data[i * l * c..][..l * c],
                        &known[i * l..][..l],
                    )
                })
                .collect())
        }
        Storage::Cuda(_) => {
            let dev = logits.device();
            let flags: Vec<u32> = known.iter().map(|&k| k as u32).collect();
            let flags = Tensor::from_u32(flags, &[b * l])?.to_device(&dev)?;
            let chosen = cuda::choose_positions(logits.cuda_dense()?, flags.cuda_dense()?, (b, l, c), k.min(l))?;
            let chosen = Tensor::from_cuda(chosen, &[b, k.min(l)])?.to_device(&crate::device::Device::Cpu)?;
            Ok(chosen
                .cpu_u32()?
                .chunks(k.min(l).max(1))
                .map(|row| row.iter().copied().filter(|&p| p != cuda::NONE).collect())
                .collect())
        }
    }
}

/// One token per row of logits (`[R, C]`, or `[B, L, C]` as B*L rows): top-`k` filter,
/// softmax of logits / `temperature`, inverse-CDF draw with `u[row]` in [0, 1).
pub fn topk_sample(logits: &Tensor, u: &[f32], k: usize, temperature: f32) -> Result<Vec<u32>> {
    const OP: &str = "topk_sample";
    let (b, r, c) = split(OP, logits)?;
    let rows = b * r;
    if k == 0 || c == 0 {
        return Err(Error::shape(
            OP,
            format!("top-k needs k >= 1 and at least one class (k = {k}, classes = {c})"),
        ));
    }
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(Error::msg(format!(
            "{OP}: temperature must be positive and finite, got {temperature}"
        )));
    }
    if u.len() != rows {
        return Err(Error::shape(
            OP,
            format!("{} uniforms for {rows} rows", u.len()),
        ));
    }
    if let Some(i) = u.iter().position(|x| !(0.0..1.0).contains(x)) {
        return Err(Error::msg(format!(
            "{OP}: uniform {} of row {i} is outside [0, 1)",
            u[i]
        )));
    }
    let logits = logits.contiguous()?;
    match logits.storage() {
        Storage::Cpu(_) => {
            let p = TopkSampleParams {
                rows: rows as u32,
                classes: c as u32,
                k: k as u32,
                temperature,
            };
            let drawn = cpu::topk_sample_rows_fast(&p, logits.cpu_f32()?, u);
            drawn
                .into_iter()
                .enumerate()
                .map(|(i, t)| {
                    t.ok_or_else(|| {
                        Error::msg(format!(
                            "{OP}: row {i} has no finite logit among its top {k}"
                        ))
                    })
                })
                .collect()
        }
        Storage::Cuda(_) => {
            let dev = logits.device();
            let uniforms = Tensor::from_vec(u.to_vec(), &[rows])?.to_device(&dev)?;
            let tokens = cuda::topk_sample_rows(
                logits.cuda_dense()?,
                uniforms.cuda_dense()?,
                0,
                cuda::RowSource::All,
                rows,
                (c, k.min(c)),
                temperature,
            )?;
            let tokens = Tensor::from_cuda(tokens, &[rows])?.to_device(&crate::device::Device::Cpu)?;
            Ok(tokens.cpu_u32()?.to_vec())
        }
    }
}
