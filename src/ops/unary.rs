//! Element-wise unary ops and activations on f32 tensors of any shape, their scalar forms
//! (`add_scalar`, `mul_scalar`, `pow_scalar`) and the one backward entry point
//! `unary_backward`. GELU2 = `x * sigmoid(1.702 x)` (spec §3.2); GELU is the exact erf form.
//! Kink conventions (relu'(0) = 0, leaky_relu'(0) = slope, clamp passes the gradient on its
//! closed interval, abs'(0) = 0) are documented in `cpu/ops/unary.rs`.

use super::prep::{check_u32_len, dense_f32, expect_shape};
use crate::cpu::ops::unary as cpu;
use crate::cuda::ops::unary as cuda;
use crate::error::{Error, Result};
use crate::params::unary::{UnaryOp, UnaryParams};
use crate::storage::Storage;
use crate::tensor::Tensor;

/// `y = f(x)` for the op with its constants (`alpha`, `beta`; unused ones are ignored).
pub fn unary(op: UnaryOp, x: &Tensor, alpha: f32, beta: f32) -> Result<Tensor> {
    let x = dense_f32(op.name(), x)?;
    check_u32_len(op.name(), x.numel())?;
    let p = UnaryParams::new(op, x.numel(), alpha, beta);
    match x.storage() {
        Storage::Cpu(_) => {
            Tensor::from_vec(cpu::unary_fast_new(&p, x.cpu_f32()?), x.shape())
        }
        Storage::Cuda(_) => {
            Tensor::from_cuda(cuda::unary_fwd(x.cuda_dense()?, &p)?, x.shape())
        }
    }
}

/// `dx = g * f'(x)` from the input `x`, the forward output `y = f(x)` and the output gradient `g`
/// (all the same shape).
pub fn unary_backward(
    op: UnaryOp,
    x: &Tensor,
    y: &Tensor,
    g: &Tensor,
    alpha: f32,
    beta: f32,
) -> Result<Tensor> {
    let name = op.name();
    expect_shape(name, "backward: output", y, x.shape())?;
    expect_shape(name, "backward: gradient", g, x.shape())?;
    super::check_same_device(name, x, g)?;
    super::check_same_device(name, x, y)?;
    let g_shape = x.shape().to_vec();
    let g_shape = g_shape.as_slice();
    let (x, y, g) = (
        dense_f32(name, x)?,
        dense_f32(name, y)?,
        dense_f32(name, g)?,
    );
    let p = UnaryParams::new(op, x.numel(), alpha, beta);
    match (x.storage(), y.storage(), g.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_), Storage::Cpu(_)) => {
            Tensor::from_vec(cpu::unary_backward_fast_new(&p, x.cpu_f32()?, y.cpu_f32()?, g.cpu_f32()?), x.shape())
        }
        _ => {
            let (x, y, g) = (x.cuda_dense()?, y.cuda_dense()?, g.cuda_dense()?);
            Tensor::from_cuda(cuda::unary_bwd(x, y, g, &p)?, g_shape)
        }
    }
}

pub fn neg(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Neg, x, 0.0, 0.0)
}
pub fn abs(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Abs, x, 0.0, 0.0)
}
pub fn exp(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Exp, x, 0.0, 0.0)
}
/// Natural log (log(0) = -inf, log(<0) = NaN, as IEEE).
pub fn log(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Log, x, 0.0, 0.0)
}
pub fn sqrt(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Sqrt, x, 0.0, 0.0)
}
pub fn square(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Square, x, 0.0, 0.0)
}
pub fn relu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Relu, x, 0.0, 0.0)
}
/// `x if x > 0 else slope * x`.
pub fn leaky_relu(x: &Tensor, slope: f32) -> Result<Tensor> {
    unary(UnaryOp::LeakyRelu, x, slope, 0.0)
}
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Sigmoid, x, 0.0, 0.0)
}
pub fn tanh(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Tanh, x, 0.0, 0.0)
}
/// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` (PyTorch `nn.GELU()` default).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Gelu, x, 0.0, 0.0)
}
/// GELU2 `x * sigmoid(1.702 x)`: the transformer MLP activation (spec §3.2).
pub fn gelu2(x: &Tensor) -> Result<Tensor> {
    unary(UnaryOp::Gelu2, x, 0.0, 0.0)
}
/// `min(max(x, min), max)`; an error when `min > max` or a bound is NaN.
pub fn clamp(x: &Tensor, min: f32, max: f32) -> Result<Tensor> {
    if min.is_nan() || max.is_nan() || min > max {
        return Err(Error::msg(format!("clamp: min {min} must be <= max {max}")));
    }
    unary(UnaryOp::Clamp, x, min, max)
}
/// `x + s`.
pub fn add_scalar(x: &Tensor, s: f32) -> Result<Tensor> {
    unary(UnaryOp::AddScalar, x, s, 0.0)
}
/// `x * s`.
pub fn mul_scalar(x: &Tensor, s: f32) -> Result<Tensor> {
    unary(UnaryOp::MulScalar, x, s, 0.0)
}
/// `x ^ e` (f32 `powf`: a negative base with a non-integer exponent gives NaN).
pub fn pow_scalar(x: &Tensor, e: f32) -> Result<Tensor> {
    unary(UnaryOp::PowScalar, x, e, 0.0)
}
