//! Autograd for the embedding lookup: the table gets the scatter-add of the output gradient;
//! the u32 indices are plain data (no gradient), so they are a `Tensor`, not a `Var`.

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::embedding as ops;
use crate::tensor::Tensor;

pub fn embedding(tape: &Tape, table: &Var, indices: &Tensor) -> Result<Var> {
    let out = ops::embedding(table.value(), indices)?;
    let (idx, vocab) = (indices.clone(), table.shape()[0]);
    Ok(tape.record(
        out,
        &[table],
        Box::new(move |g| Ok(vec![Some(ops::embedding_backward(&idx, g, vocab)?)])),
    ))
}
