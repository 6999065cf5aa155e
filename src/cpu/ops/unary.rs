//! CPU element-wise unary ops and activations on dense flat slices (any shape): forward
//! `y = f(x)` and backward `dx = g * f'(x)`. GELU is the exact erf form; GELU2 is
//! `x * sigmoid(1.702 x)` (spec §3.2).
//!
//! Conventions at kinks and edges (the same as PyTorch's backward formulas):
//! * relu'(0) = 0 (gradient only where x > 0); leaky_relu'(0) = slope (the `x > 0` branch is the
//!   identity one); abs'(0) = 0 (sign(0));
//! * clamp passes the gradient where `min <= x <= max` (bounds inclusive), 0 outside;
//! * sqrt'(0) = +inf, log'(0) = +inf (no silent clipping);
//! * pow_scalar with exponent 0 has gradient 0 everywhere.
//!
//! `_ref` computes in f64 (the oracle; its erf is a power series / continued fraction accurate to
//! ~1e-15). `_fast` computes in f32, one loop specialised per op, with rayon over large
//! tensors; its erf is the Chebyshev-fitted `erfc` of Numerical Recipes (fractional error
//! < 1.2e-7 everywhere), evaluated in f64. `unary_fast_new` and `unary_backward_fast_new`
//! return a new output without zeroing it first (`out_buf`).

use super::out_buf::{filled_vec, OutElem};
use super::vmath;
use crate::params::unary::{UnaryOp, UnaryParams};
use rayon::prelude::*;

const PAR_MIN: usize = 1 << 15;
const PAR_CHUNK: usize = 1 << 14;
const GELU2_K: f64 = 1.702;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi), the standard normal density at 0.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

// ---------------------------------------------------------------- erf

/// Below this |x| the Maclaurin series is used (its alternating terms lose under one digit to
/// cancellation there); above it the continued fraction of erfc, which converges fast for
/// x >= 2 (160 terms reach f64 rounding already at x = 1.5).
const ERF_SPLIT: f64 = 2.0;

/// erf in f64 (error ~1e-15): series for small |x|, `1 - erfc` from the continued fraction above.
pub fn erf_f64(x: f64) -> f64 {
    let ax = x.abs();
    if ax < ERF_SPLIT {
        erf_series(x)
    } else {
        (1.0 - erfc_cf(ax)).copysign(x)
    }
}

/// erfc in f64, accurate in both tails (no `1 - erf` cancellation for large x).
pub fn erfc_f64(x: f64) -> f64 {
    if x >= ERF_SPLIT {
        erfc_cf(x)
    } else if x <= -ERF_SPLIT {
        2.0 - erfc_cf(-x)
    } else {
        1.0 - erf_series(x)
    }
}

/// erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1)).
fn erf_series(x: f64) -> f64 {
    let (x2, mut term, mut sum) = (x * x, x, x);
    for n in 1..200 {
        term *= -x2 / n as f64;
        let add = term / (2 * n + 1) as f64;
        sum += add;
        if add.abs() <= 1e-17 * sum.abs() {
            break;
        }
    }
    sum * std::f64::consts::FRAC_2_SQRT_PI
}

/// erfc(x) for x >= 2 by the continued fraction
/// erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated bottom-up.
fn erfc_cf(x: f64) -> f64 {
    let mut f = x;
    for k in (1..=160).rev() {
        f = x + (k as f64 * 0.5) / f;
    }
    (-x * x).exp() / (std::f64::consts::PI.sqrt() * f)
}

/// erfc for f32 inputs: Numerical Recipes' `erfcc` (Chebyshev fit, fractional error < 1.2e-7
/// for all x). Evaluated in f64 and rounded once: in f32, the rounding of the exponent argument
/// (about -x^2 - 1.3) alone would add ~|arg| * 6e-8 relative error, ~1e-6 near x = 2.
#[inline]
pub fn erfc_f32(x: f32) -> f32 {
    let z = (x as f64).abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * (-z * z + poly).exp();
    (if x >= 0.0 { ans } else { 2.0 - ans }) as f32
}

// ---------------------------------------------------------------- scalar definitions

/// f(x) in f64 for one element: the definition every other version is checked against.
pub fn forward_f64(op: UnaryOp, alpha: f64, beta: f64, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Relu => {
            if x <= 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryOp::LeakyRelu => {
            if x > 0.0 {
                x
            } else {
                alpha * x
            }
        }
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Gelu => 0.5 * x * erfc_f64(-x * FRAC_1_SQRT_2),
        UnaryOp::Gelu2 => x / (1.0 + (-GELU2_K * x).exp()),
        UnaryOp::Clamp => {
            if x < alpha {
                alpha
            } else if x > beta {
                beta
            } else {
                x
            }
        }
        UnaryOp::AddScalar => x + alpha,
        UnaryOp::MulScalar => x * alpha,
        UnaryOp::PowScalar => x.powf(alpha),
    }
}

/// f'(x) in f64 (kink conventions in the file header).
pub fn derivative_f64(op: UnaryOp, alpha: f64, beta: f64, x: f64) -> f64 {
    match op {
        UnaryOp::Neg => -1.0,
        UnaryOp::Abs => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => 1.0 / x,
        UnaryOp::Sqrt => 0.5 / x.sqrt(),
        UnaryOp::Square => 2.0 * x,
        UnaryOp::Relu => {
            if x > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        UnaryOp::LeakyRelu => {
            if x > 0.0 {
                1.0
            } else {
                alpha
            }
        }
        UnaryOp::Sigmoid => {
            let s = 1.0 / (1.0 + (-x).exp());
            s * (1.0 - s)
        }
        UnaryOp::Tanh => 1.0 - x.tanh().powi(2),
        UnaryOp::Gelu => {
            0.5 * erfc_f64(-x * FRAC_1_SQRT_2) + x * INV_SQRT_2PI * (-0.5 * x * x).exp()
        }
        UnaryOp::Gelu2 => {
            let s = 1.0 / (1.0 + (-GELU2_K * x).exp());
            s + GELU2_K * x * s * (1.0 - s)
        }
        UnaryOp::Clamp => {
            if x >= alpha && x <= beta {
                1.0
            } else {
                0.0
            }
        }
        UnaryOp::AddScalar => 1.0,
        UnaryOp::MulScalar => alpha,
        UnaryOp::PowScalar => {
            if alpha == 0.0 {
                0.0
            } else {
                alpha * x.powf(alpha - 1.0)
            }
        }
    }
}

/// f(x) in f32 (what `unary_fast` runs).
#[inline(always)]
fn forward_f32(op: UnaryOp, alpha: f32, beta: f32, x: f32) -> f32 {
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Square => x * x,
        UnaryOp::Relu => {
            if x <= 0.0 {
                0.0
            } else {
                x
            }
        }
        UnaryOp::LeakyRelu => {
            if x > 0.0 {
                x
            } else {
                alpha * x
            }
        }
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Gelu => 0.5 * x * erfc_f32(-x * FRAC_1_SQRT_2 as f32),
        UnaryOp::Gelu2 => x / (1.0 + (-(GELU2_K as f32) * x).exp()),
        UnaryOp::Clamp => {
            if x < alpha {
                alpha
            } else if x > beta {
                beta
            } else {
                x
            }
        }
        UnaryOp::AddScalar => x + alpha,
        UnaryOp::MulScalar => x * alpha,
        UnaryOp::PowScalar => x.powf(alpha),
    }
}

/// dx for one element in f32, using the saved output `y` where it is cheaper (exp, sqrt,
/// sigmoid, tanh).
#[inline(always)]
fn backward_f32(op: UnaryOp, alpha: f32, beta: f32, x: f32, y: f32, g: f32) -> f32 {
    match op {
        UnaryOp::Neg => -g,
        UnaryOp::Abs => {
            if x > 0.0 {
                g
            } else if x < 0.0 {
                -g
            } else {
                0.0
            }
        }
        UnaryOp::Exp => g * y,
        UnaryOp::Log => g / x,
        UnaryOp::Sqrt => g * 0.5 / y,
        UnaryOp::Square => 2.0 * x * g,
        UnaryOp::Relu => {
            if x > 0.0 {
                g
            } else {
                0.0
            }
        }
        UnaryOp::LeakyRelu => {
            if x > 0.0 {
                g
            } else {
                alpha * g
            }
        }
        UnaryOp::Sigmoid => g * y * (1.0 - y),
        UnaryOp::Tanh => g * (1.0 - y * y),
        UnaryOp::Gelu => {
            let cdf = 0.5 * erfc_f32(-x * FRAC_1_SQRT_2 as f32);
            g * (cdf + x * INV_SQRT_2PI as f32 * (-0.5 * x * x).exp())
        }
        UnaryOp::Gelu2 => {
            let k = GELU2_K as f32;
            let s = 1.0 / (1.0 + (-k * x).exp());
            g * (s + k * x * s * (1.0 - s))
        }
        UnaryOp::Clamp => {
            if x >= alpha && x <= beta {
                g
            } else {
                0.0
            }
        }
        UnaryOp::AddScalar => g,
        UnaryOp::MulScalar => alpha * g,
        UnaryOp::PowScalar => {
            if alpha == 0.0 {
                0.0
            } else {
                g * alpha * x.powf(alpha - 1.0)
            }
        }
    }
}

// ---------------------------------------------------------------- slice kernels

/// The oracle forward: f64 per element.
pub fn unary_ref(p: &UnaryParams, x: &[f32], y: &mut [f32]) {
    let (op, a, b) = (p.kind(), p.alpha as f64, p.beta as f64);
    for (o, &v) in y.iter_mut().zip(x) {
        *o = forward_f64(op, a, b, v as f64) as f32;
    }
}

/// Calls `$body` with `$k` bound to the op as a constant, one arm per op, so the per-element
/// `match` inside `forward_f32` / `backward_f32` folds away and each loop is compiled (and
/// vectorised) for its own op.
macro_rules! for_each_op {
    ($op:expr, $k:ident => $body:expr) => {
        for_each_op!(@arms $op, $k => $body; Neg, Abs, Exp, Log, Sqrt, Square, Relu, LeakyRelu,
            Sigmoid, Tanh, Gelu, Gelu2, Clamp, AddScalar, MulScalar, PowScalar)
    };
    (@arms $op:expr, $k:ident => $body:expr; $($v:ident),*) => {
        match $op {
            $(UnaryOp::$v => {
                const $k: UnaryOp = UnaryOp::$v;
                $body
            })*
        }
    };
}

/// `y[i] = f(x[i])` with rayon over chunks of large slices.
#[inline(always)]
fn map1<O: OutElem>(x: &[f32], y: &mut [O], f: impl Fn(f32) -> f32 + Sync) {
    let chunk = |yc: &mut [O], xc: &[f32]| yc.iter_mut().zip(xc).for_each(|(o, &v)| o.put(f(v)));
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(yc, xc)| chunk(yc, xc));
    } else {
        chunk(y, x);
    }
}

/// `f(y_chunk, x_chunk)` over matching chunks, with rayon over chunks of large slices.
fn map_chunks<O: OutElem>(x: &[f32], y: &mut [O], f: impl Fn(&mut [O], &[f32]) + Sync) {
    if x.len() >= PAR_MIN {
        y.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(yc, xc)| f(yc, xc));
    } else {
        f(y, x);
    }
}

/// What runs: f32, one specialised loop per op, rayon over chunks of large tensors.
pub fn unary_fast(p: &UnaryParams, x: &[f32], y: &mut [f32]) {
    unary_into(p, x, y);
}

/// `unary_fast` into a new vector of `x.len()` values, not zeroed first.
pub fn unary_fast_new(p: &UnaryParams, x: &[f32]) -> Vec<f32> {
    // SAFETY: `map1` and `map_chunks` cover the output with chunks matching `x`'s, and every
    // chunk is written in full (`put` per element, or `copy_in` then in place).
    unsafe { filled_vec(x.len(), |y| unary_into(p, x, y)) }
}

fn unary_into<O: OutElem>(p: &UnaryParams, x: &[f32], y: &mut [O]) {
    assert_eq!(x.len(), y.len(), "unary: input and output lengths differ");
    let (a, b) = (p.alpha, p.beta);
    if p.kind() == UnaryOp::Gelu2 {
        // The transformer MLP's activation: exp-bound, so it takes the 8-lane exp of vmath
        // (about 1 ulp) instead of one libm call per element.
        return map_chunks(x, y, |yc, xc| vmath::x_sigmoid_kx(O::copy_in(yc, xc), GELU2_K as f32));
    }
    for_each_op!(p.kind(), OP => map1(x, y, |v| forward_f32(OP, a, b, v)))
}

/// The oracle backward: `dx = g * f'(x)` with f' in f64 (`y` unused).
pub fn unary_backward_ref(p: &UnaryParams, x: &[f32], g: &[f32], dx: &mut [f32]) {
    let (op, a, b) = (p.kind(), p.alpha as f64, p.beta as f64);
    for ((d, &v), &gv) in dx.iter_mut().zip(x).zip(g) {
        *d = (gv as f64 * derivative_f64(op, a, b, v as f64)) as f32;
    }
}

/// What runs: f32 backward from input `x`, output `y = f(x)` and output gradient `g`, one
/// specialised loop per op.
pub fn unary_backward_fast(p: &UnaryParams, x: &[f32], y: &[f32], g: &[f32], dx: &mut [f32]) {
    unary_backward_into(p, x, y, g, dx);
}

/// `unary_backward_fast` into a new vector of `x.len()` values, not zeroed first.
pub fn unary_backward_fast_new(p: &UnaryParams, x: &[f32], y: &[f32], g: &[f32]) -> Vec<f32> {
    // SAFETY: `backward_loop` writes every element of its output, in chunks matching `x`'s.
    unsafe { filled_vec(x.len(), |dx| unary_backward_into(p, x, y, g, dx)) }
}

fn unary_backward_into<O: OutElem>(p: &UnaryParams, x: &[f32], y: &[f32], g: &[f32], dx: &mut [O]) {
    assert!(x.len() == dx.len() && y.len() == dx.len() && g.len() == dx.len(), "unary backward: lengths differ");
    let (a, b) = (p.alpha, p.beta);
    for_each_op!(p.kind(), OP => backward_loop(x, y, g, dx, |xv, yv, gv| backward_f32(OP, a, b, xv, yv, gv)))
}

#[inline(always)]
fn backward_loop<O: OutElem>(
    x: &[f32],
    y: &[f32],
    g: &[f32],
    dx: &mut [O],
    f: impl Fn(f32, f32, f32) -> f32 + Sync,
) {
    let chunk = |dc: &mut [O], xc: &[f32], yc: &[f32], gc: &[f32]| {
        for (((d, &xv), &yv), &gv) in dc.iter_mut().zip(xc).zip(yc).zip(gc) {
            d.put(f(xv, yv, gv));
        }
    };
    if x.len() >= PAR_MIN {
        dx.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .zip(y.par_chunks(PAR_CHUNK).zip(g.par_chunks(PAR_CHUNK)))
            .for_each(|((dc, xc), (yc, gc))| chunk(dc, xc, yc, gc));
    } else {
        chunk(dx, x, y, g);
    }
}
