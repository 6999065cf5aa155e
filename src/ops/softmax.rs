//! Softmax and log-softmax over the last dim of an f32 tensor `[..., N]` (numerically stable),
//! and their backward from the saved output: attention scores over keys (spec §3.2) and the
//! cross-entropy loss (log-softmax over the 512 logits, spec §3.3).

use super::prep::{check_u32_len, dense_f32, expect_shape};
use crate::cpu::ops::softmax as cpu;
use crate::cuda::ops::softmax as cuda;
use crate::error::{Error, Result};
use crate::params::softmax::SoftmaxParams;
use crate::storage::Storage;
use crate::tensor::Tensor;

fn params(name: &'static str, x: &Tensor, log: bool) -> Result<SoftmaxParams> {
    let Some(&len) = x.shape().last() else {
        return Err(Error::shape(name, "input must have rank >= 1"));
    };
    check_u32_len(name, x.numel())?;
    Ok(SoftmaxParams::new(
        x.numel().checked_div(len).unwrap_or(0),
        len,
        log,
    ))
}

fn forward(name: &'static str, x: &Tensor, log: bool) -> Result<Tensor> {
    let p = params(name, x, log)?;
    let x = dense_f32(name, x)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let mut y = vec![0f32; x.numel()];
            cpu::softmax_fast(&p, x.cpu_f32()?, &mut y);
            Tensor::from_vec(y, x.shape())
        }
        Storage::Cuda(_) => {
            let (rows, cols) = (p.rows as usize, p.len as usize);
            let y = cuda::softmax_kind_fwd(log, x.cuda_dense()?, rows, cols)?;
            Tensor::from_cuda(y, x.shape())
        }
    }
}

fn backward(name: &'static str, y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor> {
    let p = params(name, y, log)?;
    expect_shape(name, "backward: gradient", g, y.shape())?;
    super::check_same_device(name, y, g)?;
    let (y, g) = (dense_f32(name, y)?, dense_f32(name, g)?);
    match (y.storage(), g.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            let mut dx = vec![0f32; y.numel()];
            cpu::softmax_bwd_fast(&p, y.cpu_f32()?, g.cpu_f32()?, &mut dx);
            Tensor::from_vec(dx, y.shape())
        }
        _ => {
            let (rows, cols) = (p.rows as usize, p.len as usize);
            let dx = cuda::softmax_kind_bwd(log, y.cuda_dense()?, g.cuda_dense()?, rows, cols)?;
            Tensor::from_cuda(dx, y.shape())
        }
    }
}

/// `exp(x - max) / sum(exp(x - max))` over the last dim.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    forward("softmax", x, false)
}
/// `x - max - log(sum(exp(x - max)))` over the last dim.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    forward("log_softmax", x, true)
}
/// dx of softmax from its output `y` and output gradient `g`: `y * (g - sum(g * y))`.
pub fn softmax_backward(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    backward("softmax backward", y, g, false)
}
/// dx of log-softmax from its output `y` and output gradient `g`: `g - exp(y) * sum(g)`.
pub fn log_softmax_backward(y: &Tensor, g: &Tensor) -> Result<Tensor> {
    backward("log_softmax backward", y, g, true)
}
