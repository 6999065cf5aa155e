//! Autograd for the element-wise unary ops, activations and scalar forms: the forward with
//! `ops::unary`, the backward with `ops::unary::unary_backward` from the saved input and output
//! (kink conventions in `cpu/ops/unary.rs`: relu'(0) = 0, leaky_relu'(0) = slope, clamp passes
//! the gradient on its closed interval).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::unary as ops;
use crate::params::unary::UnaryOp;

/// Any unary op with its constants, recorded on the tape.
pub fn unary(tape: &Tape, op: UnaryOp, x: &Var, alpha: f32, beta: f32) -> Result<Var> {
    let y = ops::unary(op, x.value(), alpha, beta)?;
    let (xv, yv) = (x.value().clone(), y.clone());
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |g| {
            Ok(vec![Some(ops::unary_backward(
                op, &xv, &yv, g, alpha, beta,
            )?)])
        }),
    ))
}

pub fn neg(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Neg, x, 0.0, 0.0)
}
pub fn abs(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Abs, x, 0.0, 0.0)
}
pub fn exp(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Exp, x, 0.0, 0.0)
}
pub fn log(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Log, x, 0.0, 0.0)
}
pub fn sqrt(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Sqrt, x, 0.0, 0.0)
}
pub fn square(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Square, x, 0.0, 0.0)
}
pub fn relu(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Relu, x, 0.0, 0.0)
}
pub fn leaky_relu(tape: &Tape, x: &Var, slope: f32) -> Result<Var> {
    unary(tape, UnaryOp::LeakyRelu, x, slope, 0.0)
}
pub fn sigmoid(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Sigmoid, x, 0.0, 0.0)
}
pub fn tanh(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Tanh, x, 0.0, 0.0)
}
pub fn gelu(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Gelu, x, 0.0, 0.0)
}
/// GELU2 `x * sigmoid(1.702 x)` (spec §3.2).
pub fn gelu2(tape: &Tape, x: &Var) -> Result<Var> {
    unary(tape, UnaryOp::Gelu2, x, 0.0, 0.0)
}
pub fn clamp(tape: &Tape, x: &Var, min: f32, max: f32) -> Result<Var> {
    // Validate the bounds through the op's own check before recording.
    let y = ops::clamp(x.value(), min, max)?;
    let (xv, yv) = (x.value().clone(), y.clone());
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |g| {
            Ok(vec![Some(ops::unary_backward(
                UnaryOp::Clamp,
                &xv,
                &yv,
                g,
                min,
                max,
            )?)])
        }),
    ))
}
pub fn add_scalar(tape: &Tape, x: &Var, s: f32) -> Result<Var> {
    unary(tape, UnaryOp::AddScalar, x, s, 0.0)
}
pub fn mul_scalar(tape: &Tape, x: &Var, s: f32) -> Result<Var> {
    unary(tape, UnaryOp::MulScalar, x, s, 0.0)
}
pub fn pow_scalar(tape: &Tape, x: &Var, e: f32) -> Result<Var> {
    unary(tape, UnaryOp::PowScalar, x, e, 0.0)
}
