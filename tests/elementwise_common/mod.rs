//! Helpers shared by the element-wise / reduction / shape op test files: tensor builders, and a
//! gradient check of any autograd op against central finite differences of an f64 twin.
#![allow(dead_code)]

use fdm::autograd::{Tape, Var};
use fdm::testing::{assert_grad_close, finite_diff, random_vec};
use fdm::{Result, Tensor};

/// Analytic gradients come from f32 backward kernels (relative rounding ~1e-6, a few times that
/// after a row reduction); the f64 central differences with step 1e-3 on smooth functions have
/// truncation error ~1e-7. 1e-4 * (1 + |g|) leaves a margin for the f32 side only.
pub const GRAD_TOL: f64 = 1e-4;
pub const FD_EPS: f64 = 1e-3;

pub fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).expect("test tensor")
}

pub fn rand(seed: u64, shape: &[usize], lo: f32, hi: f32) -> Tensor {
    t(&random_vec(seed, shape.iter().product(), lo, hi), shape)
}

pub fn vals(x: &Tensor) -> Vec<f32> {
    x.to_vec_f32().expect("values")
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Checks every input's gradient of `op` (an autograd function of `inputs.len()` variables)
/// against finite differences of `twin` (the same function in f64 on flat values), through the
/// loss `sum_i w_i * out_i` with seeded random weights `w`.
pub fn check_grads(
    what: &str,
    inputs: &[(Vec<f32>, Vec<usize>)],
    op: impl Fn(&Tape, &[Var]) -> Result<Var>,
    twin: impl Fn(&[Vec<f64>]) -> Vec<f64>,
) {
    let tape = Tape::new();
    let vars: Vec<Var> = inputs.iter().map(|(v, s)| tape.var(t(v, s))).collect();
    let out = op(&tape, &vars).expect("forward");
    let w = random_vec(0xC0FFEE, out.value().numel(), -1.0, 1.0);
    let grads = tape
        .backward_with(&out, t(&w, out.shape()))
        .expect("backward");
    let w64 = to64(&w);
    let x64: Vec<Vec<f64>> = inputs.iter().map(|(v, _)| to64(v)).collect();
    // The twin must agree with the forward itself, or the gradient check means nothing.
    let y64 = twin(&x64);
    let y32 = vals(out.value());
    assert_eq!(y64.len(), y32.len(), "{what}: twin output length");
    for (i, (&a, &b)) in y32.iter().zip(&y64).enumerate() {
        assert!(
            (a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()),
            "{what}: forward[{i}] {a} vs twin {b}"
        );
    }
    for (k, var) in vars.iter().enumerate() {
        let analytic = to64(&vals(grads.expect(var, what).expect("gradient")));
        let numeric = finite_diff(&x64[k], FD_EPS, |xk| {
            let mut all = x64.clone();
            all[k] = xk.to_vec();
            twin(&all).iter().zip(&w64).map(|(y, w)| y * w).sum()
        });
        assert_grad_close(&analytic, &numeric, GRAD_TOL, &format!("{what}: input {k}"));
    }
}

/// Row-major multi-index of flat index `i` in `shape`.
pub fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

/// Flat index of the element of `shape` that broadcasts to output multi-index `out_idx`.
pub fn broadcast_source(out_idx: &[usize], shape: &[usize]) -> usize {
    let lead = out_idx.len() - shape.len();
    let mut flat = 0;
    for (d, &n) in shape.iter().enumerate() {
        flat = flat * n + if n == 1 { 0 } else { out_idx[lead + d] };
    }
    flat
}
