//! Autograd for the reductions: sum/mean broadcast the gradient back over the reduced dims
//! (mean also divides by the count); max/min send the whole gradient of each group to its first
//! extreme element (row-major over the reduced dims; ties are not split).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::reduce as ops;

fn all_dims(x: &Var) -> Vec<usize> {
    (0..x.shape().len()).collect()
}

pub fn sum(tape: &Tape, x: &Var, dims: &[usize], keepdim: bool) -> Result<Var> {
    let out = ops::sum(x.value(), dims, keepdim)?;
    let (shape, dims) = (x.shape().to_vec(), dims.to_vec());
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::expand_reduced(g, &shape, &dims, 1.0)?)])),
    ))
}

pub fn mean(tape: &Tape, x: &Var, dims: &[usize], keepdim: bool) -> Result<Var> {
    let out = ops::mean(x.value(), dims, keepdim)?;
    let (shape, dims) = (x.shape().to_vec(), dims.to_vec());
    let count: usize = dims.iter().map(|&d| shape[d]).product();
    let scale = 1.0 / count as f32;
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::expand_reduced(g, &shape, &dims, scale)?)])),
    ))
}

fn extreme(tape: &Tape, x: &Var, dims: &[usize], keepdim: bool, is_max: bool) -> Result<Var> {
    let out = if is_max {
        ops::max(x.value(), dims, keepdim)?
    } else {
        ops::min(x.value(), dims, keepdim)?
    };
    let (xv, dims) = (x.value().clone(), dims.to_vec());
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::extreme_backward(&xv, &dims, g, is_max)?)])),
    ))
}

pub fn max(tape: &Tape, x: &Var, dims: &[usize], keepdim: bool) -> Result<Var> {
    extreme(tape, x, dims, keepdim, true)
}
pub fn min(tape: &Tape, x: &Var, dims: &[usize], keepdim: bool) -> Result<Var> {
    extreme(tape, x, dims, keepdim, false)
}
/// Sum of all elements, shape `[]` (a loss).
pub fn sum_all(tape: &Tape, x: &Var) -> Result<Var> {
    sum(tape, x, &all_dims(x), false)
}
/// Mean of all elements, shape `[]` (a loss).
pub fn mean_all(tape: &Tape, x: &Var) -> Result<Var> {
    mean(tape, x, &all_dims(x), false)
}
