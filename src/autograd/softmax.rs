//! Autograd for softmax / log-softmax over the last dim (backward from the saved output).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::softmax as ops;

pub fn softmax(tape: &Tape, x: &Var) -> Result<Var> {
    let y = ops::softmax(x.value())?;
    let yv = y.clone();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::softmax_backward(&yv, g)?)])),
    ))
}

pub fn log_softmax(tape: &Tape, x: &Var) -> Result<Var> {
    let y = ops::log_softmax(x.value())?;
    let yv = y.clone();
    Ok(tape.record(
        y,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::log_softmax_backward(&yv, g)?)])),
    ))
}
