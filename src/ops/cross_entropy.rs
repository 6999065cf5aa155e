//! Tensor-level cross-entropy over the last dim with u32 targets (spec §3.5, §6.5).
//! logits `[..., C]` f32, targets `[...]` u32 (the leading shape of the logits), optional
//! per-position weights `[...]` f32. Plain: mean over rows whose target is not `ignore_index`.
//! Weighted (spec §3.5): `sum w_i ce_i / (sum w_i + 1e-18)`. The loss is a scalar tensor.
//! On a CUDA device the loss and its gradient stay there (`cuda::ops::losses::cross_entropy`);
//! the targets are range-checked on the device (one word comes back), as the CPU checks them.

use super::argcheck::{expect_f32, expect_same_device, expect_u32};
use super::losses::{device_grad, grad_value};
use crate::cpu::ops::cross_entropy as cpu;
use crate::cuda::ops::losses as cuda;
use crate::error::{Error, Result};
use crate::params::losses::CrossEntropyParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Checks the inputs and returns the params and dense copies (logits, targets, weights).
fn prepare(
    op: &'static str,
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
    ignore_index: u32,
) -> Result<(CrossEntropyParams, Tensor, Tensor, Option<Tensor>)> {
    expect_f32(op, logits)?;
    expect_u32(op, targets)?;
    let Some((&classes, lead)) = logits.shape().split_last() else {
        return Err(Error::shape(
            op,
            "logits must have at least one dim (the classes)",
        ));
    };
    if classes == 0 {
        return Err(Error::shape(op, "logits have zero classes"));
    }
    if targets.shape() != lead {
        return Err(Error::shape(
            op,
            format!(
                "targets {:?} must have the leading shape {lead:?} of logits {:?}",
                targets.shape(),
                logits.shape()
            ),
        ));
    }
    expect_same_device(op, &[logits, targets])?;
    let weights = match weights {
        Some(w) => {
            expect_f32(op, w)?;
            if w.shape() != lead {
                return Err(Error::shape(
                    op,
                    format!(
                        "weights {:?} must have the shape {lead:?} of the targets",
                        w.shape()
                    ),
                ));
            }
            expect_same_device(op, &[logits, w])?;
            Some(w.contiguous()?)
        }
        None => None,
    };
    let p = CrossEntropyParams {
        rows: targets.numel() as u32,
        classes: classes as u32,
        ignore_index,
    };
    Ok((p, logits.contiguous()?, targets.contiguous()?, weights))
}

fn forward(
    op: &'static str,
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
    ignore_index: u32,
) -> Result<Tensor> {
    let (p, l, t, w) = prepare(op, logits, targets, weights, ignore_index)?;
    match l.storage() {
        Storage::Cpu(_) => {
            let ws = w.as_ref().map(|w| w.cpu_f32()).transpose()?;
            Ok(Tensor::scalar(cpu::cross_entropy_fast(
                &p,
                l.cpu_f32()?,
                t.cpu_u32()?,
                ws,
            )?))
        }
        Storage::Cuda(_) => {
            let ws = w.as_ref().map(|w| w.cuda_dense()).transpose()?;
            let loss = cuda::cross_entropy(l.cuda_dense()?, t.cuda_dense()?, ws, &p)?;
            Tensor::from_cuda(loss, &[])
        }
    }
}

/// Mean cross-entropy over rows whose target is not `ignore_index`
/// (`CROSS_ENTROPY_NO_IGNORE` ignores nothing).
pub fn cross_entropy(logits: &Tensor, targets: &Tensor, ignore_index: u32) -> Result<Tensor> {
    forward("cross_entropy", logits, targets, None, ignore_index)
}

/// Spec §3.5: `sum_i w_i ce_i / (sum_i w_i + 1e-18)` (w = 1 at masked/partial positions).
pub fn cross_entropy_weighted(
    logits: &Tensor,
    targets: &Tensor,
    weights: &Tensor,
    ignore_index: u32,
) -> Result<Tensor> {
    forward(
        "cross_entropy_weighted",
        logits,
        targets,
        Some(weights),
        ignore_index,
    )
}

/// d loss / d logits times g, for either reduction (weights None: the plain mean).
pub fn cross_entropy_backward(
    logits: &Tensor,
    targets: &Tensor,
    weights: Option<&Tensor>,
    ignore_index: u32,
    g: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "cross_entropy_backward";
    let (p, l, t, w) = prepare(OP, logits, targets, weights, ignore_index)?;
    match l.storage() {
        Storage::Cpu(_) => {
            let ws = w.as_ref().map(|w| w.cpu_f32()).transpose()?;
            let mut d = vec![0f32; l.numel()];
            cpu::cross_entropy_backward(
                &p,
                l.cpu_f32()?,
                t.cpu_u32()?,
                ws,
                grad_value(OP, g)?,
                &mut d,
            )?;
            Tensor::from_vec(d, l.shape())
        }
        Storage::Cuda(_) => {
            let g = device_grad(OP, g, &l)?;
            let ws = w.as_ref().map(|w| w.cuda_dense()).transpose()?;
            let d =
                cuda::cross_entropy_bwd(l.cuda_dense()?, t.cuda_dense()?, ws, g.cuda_dense()?, &p)?;
            Tensor::from_cuda(d, l.shape())
        }
    }
}
