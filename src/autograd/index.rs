//! Row gather on the tape: the rows a later op reads, as a new constant. Inference only (no
//! backward): the sampler's pruned last transformer block reads the residual stream and the
//! normalised activations at the positions whose logits it needs.

use crate::autograd::{Tape, Var};
use crate::error::{Error, Result};
use crate::ops::index;

/// Rows `idx` of `x` seen as `[rows, width]` (width = x's last dimension), reshaped to `shape`.
pub fn gather_rows(tape: &Tape, x: &Var, idx: &[u32], shape: &[usize]) -> Result<Var> {
    if x.requires_grad() {
        return Err(Error::msg("gather_rows is inference only: its input needs a gradient"));
    }
    Ok(tape.constant(index::gather_rows(x.value(), idx)?.reshape(shape)?))
}
