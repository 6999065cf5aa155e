//! Optimiser element loops on flat slices (spec §6.0-§6.1): one Adam/AdamW update in place,
//! squared L2 norm and scaling (gradient clipping by global norm), the weight EMA
//! `ema = decay * ema + (1 - decay) * param`, and gradient accumulation `acc += g`.
//!
//! The Adam update repeats `torch.optim.Adam` / `AdamW` (single-tensor path) operation by
//! operation in f32, with the step-dependent scalars precomputed on the host (`AdamParams`):
//! ```text
//! AdamW: param *= 1 - lr*wd          Adam with wd: g = g + wd*param
//! m = lerp(m, g, 1 - beta1)          (PyTorch's lerp: m + w(g - m) if w < 0.5, else g - (g - m)(1 - w))
//! v = v*beta2 + (1 - beta2)*g*g
//! denom = sqrt(v) / sqrt(1 - beta2^t) + eps
//! param = param + (-lr/(1 - beta1^t)) * m / denom
//! ```
//! `adam_step_ref` is the serial loop, `adam_step_fast` the same element rule over parallel
//! chunks (bit-identical results).

use crate::params::optim::AdamParams;
use rayon::prelude::*;

/// Elements per parallel task.
const CHUNK: usize = 16384;

/// PyTorch's `lerp(start, end, weight)` in f32.
#[inline]
fn lerp(start: f32, end: f32, w: f32) -> f32 {
    if w.abs() < 0.5 {
        start + w * (end - start)
    } else {
        end - (end - start) * (1.0 - w)
    }
}

/// One element of the Adam/AdamW update.
#[inline]
fn adam_element(p: &AdamParams, param: &mut f32, grad: f32, m: &mut f32, v: &mut f32) {
    let mut g = grad;
    if p.decoupled != 0 {
        *param *= p.decay_factor;
    } else if p.weight_decay != 0.0 {
        g += p.weight_decay * *param;
    }
    *m = lerp(*m, g, p.one_minus_beta1);
    *v = *v * p.beta2 + p.one_minus_beta2 * g * g;
    let denom = v.sqrt() / p.bias_correction2_sqrt + p.eps;
    *param += (-p.step_size) * *m / denom;
}

pub fn adam_step_ref(
    p: &AdamParams,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    for i in 0..param.len() {
        adam_element(p, &mut param[i], grad[i], &mut m[i], &mut v[i]);
    }
}

pub fn adam_step_fast(
    p: &AdamParams,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    (
        param.par_chunks_mut(CHUNK),
        grad.par_chunks(CHUNK),
        m.par_chunks_mut(CHUNK),
        v.par_chunks_mut(CHUNK),
    )
        .into_par_iter()
        .for_each(|(pc, gc, mc, vc)| adam_step_ref(p, pc, gc, mc, vc));
}

/// Sum of squares in f64, serial.
pub fn sq_norm_ref(x: &[f32]) -> f64 {
    x.iter().map(|&a| a as f64 * a as f64).sum()
}

/// Sum of squares in f64: fixed chunks in parallel, partial sums added in chunk order.
pub fn sq_norm_fast(x: &[f32]) -> f64 {
    let partial: Vec<f64> = x.par_chunks(CHUNK).map(sq_norm_ref).collect();
    partial.iter().sum()
}

/// x *= s.
pub fn scale_in_place(x: &mut [f32], s: f32) {
    x.par_chunks_mut(CHUNK)
        .for_each(|c| c.iter_mut().for_each(|a| *a *= s));
}

/// ema = decay * ema + (1 - decay) * param.
pub fn ema_update(ema: &mut [f32], param: &[f32], decay: f32) {
    let keep = 1.0 - decay;
    (ema.par_chunks_mut(CHUNK), param.par_chunks(CHUNK))
        .into_par_iter()
        .for_each(|(e, p)| {
            e.iter_mut()
                .zip(p)
                .for_each(|(e, &p)| *e = decay * *e + keep * p);
        });
}

/// acc += g.
pub fn accumulate(acc: &mut [f32], g: &[f32]) {
    (acc.par_chunks_mut(CHUNK), g.par_chunks(CHUNK))
        .into_par_iter()
        .for_each(|(a, g)| {
            a.iter_mut().zip(g).for_each(|(a, &g)| *a += g);
        });
}
