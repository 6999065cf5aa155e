//! Autograd for the broadcasting binary ops. Each gradient is computed in the broadcast (output)
//! shape and then summed back to its input's shape with `ops::reduce::sum_to_shape`:
//!   add: (g, g)   sub: (g, -g)   mul: (g*b, g*a)   div: (g/b, -g*out/b)
//!   maximum/minimum: g split by `ops::binary::maximum_grad_share` (a tie gives each input half,
//!   as PyTorch). Gradients are only computed for inputs that require them.

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::binary as ops;
use crate::ops::reduce::sum_to_shape;
use crate::ops::unary::neg;
use crate::tensor::Tensor;

/// `f(g)` summed back to `shape`, when `needed`.
fn grad_for(
    needed: bool,
    shape: &[usize],
    f: impl FnOnce() -> Result<Tensor>,
) -> Result<Option<Tensor>> {
    if needed {
        Ok(Some(sum_to_shape(&f()?, shape)?))
    } else {
        Ok(None)
    }
}

/// The pieces every binary backward closure needs: shapes, values and which inputs need grads.
struct Inputs {
    a: Tensor,
    b: Tensor,
    need: (bool, bool),
}

impl Inputs {
    fn of(a: &Var, b: &Var) -> Inputs {
        Inputs {
            a: a.value().clone(),
            b: b.value().clone(),
            need: (a.requires_grad(), b.requires_grad()),
        }
    }
}

pub fn add(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::add(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || Ok(g.clone()))?,
                grad_for(i.need.1, i.b.shape(), || Ok(g.clone()))?,
            ])
        }),
    ))
}

pub fn sub(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::sub(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || Ok(g.clone()))?,
                grad_for(i.need.1, i.b.shape(), || neg(g))?,
            ])
        }),
    ))
}

pub fn mul(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::mul(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || ops::mul(g, &i.b))?,
                grad_for(i.need.1, i.b.shape(), || ops::mul(g, &i.a))?,
            ])
        }),
    ))
}

pub fn div(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::div(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    let quotient = out.clone();
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || ops::div(g, &i.b))?,
                // d(a/b)/db = -a/b^2 = -(a/b)/b.
                grad_for(i.need.1, i.b.shape(), || {
                    neg(&ops::mul(g, &ops::div(&quotient, &i.b)?)?)
                })?,
            ])
        }),
    ))
}

pub fn maximum(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::maximum(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || {
                    ops::mul(g, &ops::maximum_grad_share(&i.a, &i.b)?)
                })?,
                grad_for(i.need.1, i.b.shape(), || {
                    ops::mul(g, &ops::maximum_grad_share(&i.b, &i.a)?)
                })?,
            ])
        }),
    ))
}

pub fn minimum(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let out = ops::minimum(a.value(), b.value())?;
    let i = Inputs::of(a, b);
    Ok(tape.record(
        out,
        &[a, b],
        Box::new(move |g| {
            // `a` wins minimum(a, b) exactly where `b` wins maximum(b, a).
            Ok(vec![
                grad_for(i.need.0, i.a.shape(), || {
                    ops::mul(g, &ops::maximum_grad_share(&i.b, &i.a)?)
                })?,
                grad_for(i.need.1, i.b.shape(), || {
                    ops::mul(g, &ops::maximum_grad_share(&i.a, &i.b)?)
                })?,
            ])
        }),
    ))
}
