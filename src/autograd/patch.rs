//! Autograd for patch unfold / fold (spec §1.1): each is the other's backward (they are inverse
//! permutations of the elements).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::patch as ops;

/// `[B, C, H, W]` -> `[B, (H/p)*(W/p), C*p*p]`.
pub fn patch_unfold(tape: &Tape, x: &Var, p: usize) -> Result<Var> {
    let out = ops::patch_unfold(x.value(), p)?;
    let hw = (x.shape()[2], x.shape()[3]);
    Ok(tape.record(
        out,
        &[x],
        Box::new(move |g| Ok(vec![Some(ops::patch_fold(g, p, hw)?)])),
    ))
}

/// `[B, (H/p)*(W/p), C*p*p]` -> `[B, C, H, W]`.
pub fn patch_fold(tape: &Tape, tokens: &Var, p: usize, image_hw: (usize, usize)) -> Result<Var> {
    let out = ops::patch_fold(tokens.value(), p, image_hw)?;
    Ok(tape.record(
        out,
        &[tokens],
        Box::new(move |g| Ok(vec![Some(ops::patch_unfold(g, p)?)])),
    ))
}
