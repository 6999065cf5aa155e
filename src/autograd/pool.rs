//! Autograd for 2-D max / average pooling (square kernel, stride, padding; PyTorch semantics).
//! Max pooling keeps the forward's argmax indices for the backward.

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::pool as ops;

pub fn max_pool2d(tape: &Tape, x: &Var, kernel: usize, stride: usize, pad: usize) -> Result<Var> {
    let (out, idx) = ops::max_pool2d_with_indices(x.value(), kernel, stride, pad)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| {
            Ok(vec![Some(ops::max_pool2d_backward(
                g, &idx, &in_shape, kernel, stride, pad,
            )?)])
        }),
    ))
}

pub fn avg_pool2d(
    tape: &Tape,
    x: &Var,
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
) -> Result<Var> {
    let out = ops::avg_pool2d(x.value(), kernel, stride, pad, count_include_pad)?;
    let in_shape = x.shape().to_vec();
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| {
            Ok(vec![Some(ops::avg_pool2d_backward(
                g,
                &in_shape,
                kernel,
                stride,
                pad,
                count_include_pad,
            )?)])
        }),
    ))
}
