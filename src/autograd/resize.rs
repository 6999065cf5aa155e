//! Autograd for nearest / bilinear resizing (PyTorch `interpolate` semantics, spec §1.5).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::resize as ops;
use crate::params::resize::ResizeMode;

pub fn resize(tape: &Tape, x: &Var, mode: ResizeMode, out_hw: (usize, usize)) -> Result<Var> {
    let out = ops::resize(x.value(), mode, out_hw)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::resize_backward(g, mode, &in_shape)?)])),
    ))
}

pub fn resize_nearest(tape: &Tape, x: &Var, out_hw: (usize, usize)) -> Result<Var> {
    resize(tape, x, ResizeMode::Nearest, out_hw)
}

pub fn resize_bilinear(tape: &Tape, x: &Var, out_hw: (usize, usize)) -> Result<Var> {
    resize(tape, x, ResizeMode::Bilinear, out_hw)
}
