//! Autograd for the shape-moving ops: reshape, permute, transpose, narrow, broadcast_as, concat.
//! Their forwards are views or copies (`Tensor` methods, `ops::concat`); backward rules:
//!   reshape -> reshape back; permute -> the inverse permutation (made dense);
//!   narrow -> `ops::concat::narrow_backward` (zeros with the slice's gradient in place);
//!   broadcast_as -> `sum_to_shape`; concat -> each input gets its slice of the gradient.
//! A feature map `[B, C, h, w]` becomes tokens `[B, h*w, C]` by reshape + permute (spec §0/§1.1).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::concat::{concat as concat_op, narrow_backward};
use crate::ops::reduce::sum_to_shape;

pub fn reshape(tape: &Tape, x: &Var, shape: &[usize]) -> Result<Var> {
    let out = x.value().reshape(shape)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(g.reshape(&in_shape)?)])),
    ))
}

/// A permuted view; its gradient is permuted back and made dense.
pub fn permute(tape: &Tape, x: &Var, dims: &[usize]) -> Result<Var> {
    let out = x.value().permute(dims)?;
    let mut inverse = vec![0; dims.len()];
    for (i, &d) in dims.iter().enumerate() {
        inverse[d] = i;
    }
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(g.permute(&inverse)?.contiguous()?)])),
    ))
}

pub fn transpose(tape: &Tape, x: &Var, a: usize, b: usize) -> Result<Var> {
    let mut dims: Vec<usize> = (0..x.shape().len()).collect();
    if a < dims.len() && b < dims.len() {
        dims.swap(a, b);
    }
    // Out-of-range dims are reported by Tensor::transpose with its own message.
    x.value().transpose(a, b)?;
    permute(tape, x, &dims)
}

/// `x.narrow(dim, start, len)` (a view).
pub fn narrow(tape: &Tape, x: &Var, dim: usize, start: usize, len: usize) -> Result<Var> {
    let out = x.value().narrow(dim, start, len)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(narrow_backward(g, &in_shape, dim, start)?)])),
    ))
}

/// `x` broadcast (numpy rules) to `shape`; the gradient is summed back.
pub fn broadcast_as(tape: &Tape, x: &Var, shape: &[usize]) -> Result<Var> {
    let out = x.value().broadcast_as(shape)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(sum_to_shape(g, &in_shape)?)])),
    ))
}

/// Concatenate along `dim`.
pub fn concat(tape: &Tape, xs: &[&Var], dim: usize) -> Result<Var> {
    let values: Vec<_> = xs.iter().map(|v| v.value()).collect();
    let out = concat_op(&values, dim)?;
    let pieces: Vec<(usize, usize, bool)> = {
        let mut start = 0;
        xs.iter()
            .map(|v| {
                let len = v.shape()[dim];
                start += len;
                (start - len, len, v.requires_grad())
            })
            .collect()
    };
    Ok(tape.record(
        out,
        xs,
        Box::new(move |g| {
            pieces
                .iter()
                .map(|&(start, len, needed)| {
                    if needed {
                        g.narrow(dim, start, len)?.contiguous().map(Some)
                    } else {
                        Ok(None)
                    }
                })
                .collect()
        }),
    ))
}
