//! Autograd for LayerNorm over the last dim (spec §3.2): records `(x, weight, bias)` and
//! backpropagates with `ops::layernorm::layer_norm_backward` from the saved per-row mean/rstd.

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::layernorm as ops;

pub fn layer_norm(tape: &Tape, x: &Var, weight: &Var, bias: &Var, eps: f32) -> Result<Var> {
    let (y, mean, rstd) = ops::layer_norm_with_stats(x.value(), weight.value(), bias.value(), eps)?;
    let (xv, wv) = (x.value().clone(), weight.value().clone());
    Ok(tape.record(
        y,
        &[x, weight, bias],
        Box::new(move |g| {
            let (dx, dw, db) = ops::layer_norm_backward(&xv, &wv, &mean, &rstd, g)?;
            Ok(vec![Some(dx), Some(dw), Some(db)])
        }),
    ))
}
