//! Autograd for the dense products: `linear` (x [.., in], W [out, in], b [out] -> [.., out];
//! spec §3.2 q/k/v/proj/MLP, §2.1 encoder MLP) and `matmul` ([.., M, K] x [.., K, N]).
//! Each records one tape node whose backward rule calls the Tensor-level backward ops; a
//! gradient is computed only for inputs that require one (no dW work for frozen weights).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::matmul as mm;

/// `y = x * W^T + b` on the tape.
pub fn linear(tape: &Tape, x: &Var, w: &Var, b: Option<&Var>) -> Result<Var> {
    let (need_x, need_w) = (x.requires_grad(), w.requires_grad());
    if w.value().dtype() == crate::dtype::DType::BF16 && (need_x || need_w) {
        return Err(crate::error::Error::msg("linear: bf16 weights are inference-only (no gradients through them; training keeps f32 weights)"));
    }
    let y = mm::linear(x.value(), w.value(), b.map(|b| b.value()))?;
    let need_b = b.map(|b| b.requires_grad());
    // Keep only what the rule reads: W for dx, x for dW.
    let w_for_dx = need_x.then(|| w.value().clone());
    let x_for_dw = need_w.then(|| x.value().clone());
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(tape.record(
        y,
        &inputs,
        Box::new(move |g| {
            let dx = w_for_dx.as_ref().map(|w| mm::linear_backward_input(&x_shape, w, g)).transpose()?;
            let dw = x_for_dw.as_ref().map(|x| mm::linear_backward_weight(x, &w_shape, g)).transpose()?;
            let mut grads = vec![dx, dw];
            if let Some(need) = need_b {
                grads.push(if need { Some(mm::linear_backward_bias(g)?) } else { None });
            }
            Ok(grads)
        }),
    ))
}

/// `[.., M, K] x [.., K, N] -> [.., M, N]` on the tape.
pub fn matmul(tape: &Tape, a: &Var, b: &Var) -> Result<Var> {
    let y = mm::matmul(a.value(), b.value())?;
    let (av, bv) = (a.value().clone(), b.value().clone());
    let (need_a, need_b) = (a.requires_grad(), b.requires_grad());
    Ok(tape.record(
        y,
        &[a, b],
        Box::new(move |g| {
            let (da, db) = mm::matmul_backward(&av, &bv, g)?;
            Ok(vec![need_a.then_some(da), need_b.then_some(db)])
        }),
    ))
}
