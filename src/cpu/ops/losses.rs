//! Element-wise mean losses on flat slices (spec §6.5), forward and backward:
//! * L1 `mean|y - x|` and MSE `mean (y - x)^2` (y = prediction, x = target, same length);
//! * binary cross-entropy on probabilities `mean( -(t ln p + (1-t) ln(1-p)) )` with both logs
//!   clamped to >= -100 and the backward denominator clamped to >= 1e-12, as PyTorch's
//!   `binary_cross_entropy` does (the discriminator ends in a sigmoid, spec §6.5);
//! * hinge terms `mean relu(1 + sign * x)` (sign -1: real logits, +1: fake logits);
//! * `c * mean(x)` (the hinge generator term is c = -1);
//! * the hole fraction `mean(1 - mask)` that normalises L1 (spec §6.5, mask 1 = visible).
//!
//! `_ref` sums in order in f64; `_fast` sums fixed chunks in parallel (f64 partial sums added in
//! chunk order, so the result does not depend on the thread count). Means of zero elements are
//! 0/0 = NaN, as in PyTorch. Derivatives of |.| and relu at 0 are 0 (PyTorch's sign / threshold).

use rayon::prelude::*;

/// Elements per partial sum of the parallel reductions.
const CHUNK: usize = 4096;

/// Sum of `f(i)` for i < n, in order, in f64.
pub(crate) fn sum_ref(n: usize, f: impl Fn(usize) -> f64) -> f64 {
    (0..n).map(f).sum()
}

/// Sum of `f(i)` for i < n: f64 partial sums over fixed chunks, in parallel, added in order.
pub(crate) fn sum_fast(n: usize, f: impl Fn(usize) -> f64 + Sync) -> f64 {
    let chunks = n.div_ceil(CHUNK);
    let partial: Vec<f64> = (0..chunks)
        .into_par_iter()
        .map(|c| (c * CHUNK..((c + 1) * CHUNK).min(n)).map(&f).sum())
        .collect();
    partial.iter().sum()
}

fn l1_term<'a>(y: &'a [f32], x: &'a [f32]) -> impl Fn(usize) -> f64 + Sync + 'a {
    move |i| (y[i] as f64 - x[i] as f64).abs()
}

pub fn l1_mean_ref(y: &[f32], x: &[f32]) -> f32 {
    (sum_ref(y.len(), l1_term(y, x)) / y.len() as f64) as f32
}

pub fn l1_mean_fast(y: &[f32], x: &[f32]) -> f32 {
    (sum_fast(y.len(), l1_term(y, x)) / y.len() as f64) as f32
}

/// d/dy = g sign(y - x) / n, d/dx = -d/dy.
pub fn l1_mean_backward(y: &[f32], x: &[f32], g: f32, dy: &mut [f32], dx: &mut [f32]) {
    let c = g / y.len() as f32;
    (dy, dx, y, x).into_par_iter().for_each(|(dy, dx, &y, &x)| {
        let d = y - x;
        let s = if d > 0.0 {
            c
        } else if d < 0.0 {
            -c
        } else {
            0.0
        };
        *dy = s;
        *dx = -s;
    });
}

fn mse_term<'a>(y: &'a [f32], x: &'a [f32]) -> impl Fn(usize) -> f64 + Sync + 'a {
    move |i| {
        let d = y[i] as f64 - x[i] as f64;
        d * d
    }
}

pub fn mse_mean_ref(y: &[f32], x: &[f32]) -> f32 {
    (sum_ref(y.len(), mse_term(y, x)) / y.len() as f64) as f32
}

pub fn mse_mean_fast(y: &[f32], x: &[f32]) -> f32 {
    (sum_fast(y.len(), mse_term(y, x)) / y.len() as f64) as f32
}

/// d/dy = 2 g (y - x) / n, d/dx = -d/dy.
pub fn mse_mean_backward(y: &[f32], x: &[f32], g: f32, dy: &mut [f32], dx: &mut [f32]) {
    let c = 2.0 * g / y.len() as f32;
    (dy, dx, y, x).into_par_iter().for_each(|(dy, dx, &y, &x)| {
        *dy = c * (y - x);
        *dx = -*dy;
    });
}

/// PyTorch's floor on each log term of the binary cross-entropy.
const BCE_LOG_FLOOR: f64 = -100.0;
/// PyTorch's floor on `p (1 - p)` in the backward.
const BCE_GRAD_EPS: f32 = 1e-12;

fn bce_term<'a>(p: &'a [f32], t: &'a [f32]) -> impl Fn(usize) -> f64 + Sync + 'a {
    move |i| {
        let (p, t) = (p[i] as f64, t[i] as f64);
        let log_p = p.ln().max(BCE_LOG_FLOOR);
        let log_1mp = (-p).ln_1p().max(BCE_LOG_FLOOR);
        (t - 1.0) * log_1mp - t * log_p
    }
}

/// BCE of probabilities `p` against targets `t` (both in [0, 1]), mean.
pub fn bce_mean_ref(p: &[f32], t: &[f32]) -> f32 {
    (sum_ref(p.len(), bce_term(p, t)) / p.len() as f64) as f32
}

pub fn bce_mean_fast(p: &[f32], t: &[f32]) -> f32 {
    (sum_fast(p.len(), bce_term(p, t)) / p.len() as f64) as f32
}

/// d/dp = g (p - t) / max(p (1 - p), 1e-12) / n (PyTorch's rule; no gradient to the target).
pub fn bce_mean_backward(p: &[f32], t: &[f32], g: f32, dp: &mut [f32]) {
    let c = g / p.len() as f32;
    (dp, p, t).into_par_iter().for_each(|(dp, &p, &t)| {
        *dp = c * (p - t) / ((1.0 - p) * p).max(BCE_GRAD_EPS);
    });
}

fn hinge_term(x: &[f32], sign: f32) -> impl Fn(usize) -> f64 + Sync + '_ {
    move |i| (1.0 + sign as f64 * x[i] as f64).max(0.0)
}

/// `mean relu(1 + sign * x)`: sign = -1 for D on real data, +1 for D on fakes.
pub fn hinge_mean_ref(x: &[f32], sign: f32) -> f32 {
    (sum_ref(x.len(), hinge_term(x, sign)) / x.len() as f64) as f32
}

pub fn hinge_mean_fast(x: &[f32], sign: f32) -> f32 {
    (sum_fast(x.len(), hinge_term(x, sign)) / x.len() as f64) as f32
}

/// d/dx = g sign / n where 1 + sign x > 0, else 0.
pub fn hinge_mean_backward(x: &[f32], sign: f32, g: f32, dx: &mut [f32]) {
    let c = g * sign / x.len() as f32;
    (dx, x)
        .into_par_iter()
        .for_each(|(dx, &x)| *dx = if 1.0 + sign * x > 0.0 { c } else { 0.0 });
}

/// `c * mean(x)`.
pub fn mean_scaled_ref(x: &[f32], c: f32) -> f32 {
    (c as f64 * sum_ref(x.len(), |i| x[i] as f64) / x.len() as f64) as f32
}

pub fn mean_scaled_fast(x: &[f32], c: f32) -> f32 {
    (c as f64 * sum_fast(x.len(), |i| x[i] as f64) / x.len() as f64) as f32
}

/// d/dx = g c / n everywhere.
pub fn mean_scaled_backward(n: usize, c: f32, g: f32, dx: &mut [f32]) {
    dx[..n].fill(g * c / n as f32);
}

/// `mean(1 - mask)`: the hole fraction of a visibility mask (1 = visible, 0 = hole).
pub fn hole_fraction(mask: &[f32]) -> f64 {
    sum_fast(mask.len(), |i| 1.0 - mask[i] as f64) / mask.len() as f64
}
