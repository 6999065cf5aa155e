//! Unary ops and activations: literal values (numpy / Python math.erf), erf accuracy, fast vs ref
//! on the real shapes, backward vs finite differences, kink conventions, errors.
mod elementwise_common;
use elementwise_common::*;

use fdm::autograd::unary as ag;
use fdm::cpu::ops::unary::{
    erf_f64, erfc_f32, erfc_f64, forward_f64, unary_backward_fast, unary_backward_fast_new, unary_backward_ref,
    unary_fast, unary_fast_new, unary_ref,
};
use fdm::ops::unary::{self as ops, clamp, gelu, gelu2, leaky_relu, relu, sigmoid};
use fdm::params::unary::{UnaryOp, UnaryParams};
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

#[test]
fn unary_literal_activations_cpu() -> Result<()> {
    // numpy + math.erf:
    //   x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0]); erf = np.vectorize(math.erf)
    //   0.5*x*(1+erf(x/math.sqrt(2))); x/(1+np.exp(-1.702*x)); 1/(1+np.exp(-x)); np.tanh(x)
    let x = t(&[-2.0, -0.5, 0.0, 0.5, 2.0], &[5]);
    let gelu_np = [
        -0.04550026389635842,
        -0.15426876936299344,
        0.0,
        0.34573123063700656,
        1.9544997361036416,
    ];
    let gelu2_np = [
        -0.06434137685579186,
        -0.1496115633936199,
        0.0,
        0.35038843660638014,
        1.9356586231442083,
    ];
    let sigmoid_np = [
        0.11920292202211755,
        0.3775406687981454,
        0.5,
        0.6224593312018546,
        0.8807970779778823,
    ];
    let tanh_np = [
        -0.9640275800758169,
        -0.46211715726000974,
        0.0,
        0.46211715726000974,
        0.9640275800758169,
    ];
    let f = |v: [f64; 5]| v.map(|x| x as f32);
    assert_close(&vals(&gelu(&x)?), &f(gelu_np), TOL_CPU_F32, "gelu");
    assert_close(&vals(&gelu2(&x)?), &f(gelu2_np), TOL_CPU_F32, "gelu2");
    assert_close(&vals(&sigmoid(&x)?), &f(sigmoid_np), TOL_CPU_F32, "sigmoid");
    assert_close(&vals(&ops::tanh(&x)?), &f(tanh_np), TOL_CPU_F32, "tanh");
    assert_eq!(vals(&relu(&x)?), [0.0, 0.0, 0.0, 0.5, 2.0]);
    assert_eq!(vals(&leaky_relu(&x, 0.2)?), [-0.4, -0.1, 0.0, 0.5, 2.0]);
    assert_eq!(vals(&clamp(&x, -1.0, 0.25)?), [-1.0, -0.5, 0.0, 0.25, 0.25]);
    assert_eq!(vals(&ops::abs(&x)?), [2.0, 0.5, 0.0, 0.5, 2.0]);
    assert_eq!(vals(&ops::neg(&x)?), [2.0, 0.5, -0.0, -0.5, -2.0]);
    assert_eq!(vals(&ops::square(&x)?), [4.0, 0.25, 0.0, 0.25, 4.0]);
    assert_eq!(vals(&ops::add_scalar(&x, 1.5)?), [-0.5, 1.0, 1.5, 2.0, 3.5]);
    assert_eq!(
        vals(&ops::mul_scalar(&x, -2.0)?),
        [4.0, 1.0, -0.0, -1.0, -4.0]
    );
    let p = t(&[0.25, 1.0, 4.0], &[3]);
    assert_eq!(vals(&ops::sqrt(&p)?), [0.5, 1.0, 2.0]);
    assert_eq!(vals(&ops::pow_scalar(&p, 1.5)?), [0.125, 1.0, 8.0]);
    assert_close(
        &vals(&ops::log(&p)?),
        &[-1.3862944, 0.0, 1.3862944],
        TOL_CPU_F32,
        "log",
    );
    assert_close(
        &vals(&ops::exp(&p)?),
        &[1.2840254, 2.7182817, 54.59815],
        TOL_CPU_F32,
        "exp",
    );
    Ok(())
}

#[test]
fn unary_erf_accuracy_cpu() {
    // Python: [math.erf(v) for v in [0.1, 0.5, 1.0, 2.0, 2.9, 3.5, 5.0]];
    //         [math.erfc(v) for v in [3.5, 5.0, 8.0]]
    let xs = [0.1, 0.5, 1.0, 2.0, 2.9, 3.5, 5.0];
    let erf_py = [
        0.1124629160182849,
        0.5204998778130465,
        0.8427007929497149,
        0.9953222650189527,
        0.9999589021219005,
        0.9999992569016276,
        0.9999999999984626,
    ];
    for (&x, &e) in xs.iter().zip(&erf_py) {
        assert!(
            (erf_f64(x) - e).abs() < 1e-14,
            "erf({x}) = {} vs {e}",
            erf_f64(x)
        );
        assert!((erf_f64(-x) + e).abs() < 1e-14, "erf is odd at {x}");
    }
    for (x, e) in [
        (3.5, 7.430983723414128e-07),
        (5.0, 1.5374597944280351e-12),
        (8.0, 1.1224297172982928e-29),
    ] {
        assert!(
            ((erfc_f64(x) - e) / e).abs() < 1e-12,
            "erfc({x}) = {} vs {e}",
            erfc_f64(x)
        );
    }
    // The erfc used by the fast GELU: Numerical Recipes' fit has fractional error < 1.2e-7, plus
    // one f32 rounding (6e-8) of the result: bound 2e-7 relative over [-9, 9] (beyond, GELU is
    // 0 or x in f32).
    for i in -900..=900 {
        let x = i as f32 / 100.0;
        let (got, want) = (erfc_f32(x) as f64, erfc_f64(x as f64));
        assert!(
            ((got - want) / want).abs() < 2e-7,
            "erfc_f32({x}) = {got} vs {want}"
        );
    }
}

/// Input range per op: positive for log/sqrt/pow, wide otherwise.
fn range(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::PowScalar => (0.05, 4.0),
        UnaryOp::Exp => (-6.0, 6.0),
        _ => (-8.0, 8.0),
    }
}

fn constants(op: UnaryOp) -> (f32, f32) {
    match op {
        UnaryOp::LeakyRelu => (0.2, 0.0),
        UnaryOp::Clamp => (-1.5, 2.5),
        UnaryOp::AddScalar => (0.75, 0.0),
        UnaryOp::MulScalar => (-1.25, 0.0),
        UnaryOp::PowScalar => (1.7, 0.0),
        _ => (0.0, 0.0),
    }
}

#[test]
fn unary_fast_matches_ref_cpu() {
    // Real shape: the transformer MLP hidden activation 1024 tokens x 2048 (GELU2, spec §3.2);
    // every other op on 1024 x 512.
    for op in UnaryOp::ALL {
        let n = if op == UnaryOp::Gelu2 {
            1024 * 2048
        } else {
            1024 * 512
        };
        let (lo, hi) = range(op);
        let (a, b) = constants(op);
        let x = random_vec(op as u64 + 1, n, lo, hi);
        let g = random_vec(op as u64 + 100, n, -1.0, 1.0);
        let p = UnaryParams::new(op, n, a, b);
        let (mut yr, mut yf) = (vec![0f32; n], vec![0f32; n]);
        unary_ref(&p, &x, &mut yr);
        unary_fast(&p, &x, &mut yf);
        assert_close(&yf, &yr, TOL_CPU_F32, &format!("{} forward", op.name()));
        let (mut dr, mut df) = (vec![0f32; n], vec![0f32; n]);
        unary_backward_ref(&p, &x, &g, &mut dr);
        unary_backward_fast(&p, &x, &yf, &g, &mut df);
        assert_close(&df, &dr, TOL_CPU_F32, &format!("{} backward", op.name()));
    }
}

/// The outputs the ops return (`*_fast_new`: new buffers, not zeroed) hold the bits of the
/// `*_fast` kernels into a buffer: empty, short, and split across threads with a partial last
/// chunk (GELU2 takes its copy-then-in-place path).
#[test]
fn unary_new_buffer_matches_in_place_cpu() {
    for n in [0, 1, 7, (1 << 15) + 3] {
        for op in UnaryOp::ALL {
            let (lo, hi) = range(op);
            let (a, b) = constants(op);
            let x = random_vec(op as u64 + 11, n, lo, hi);
            let g = random_vec(op as u64 + 211, n, -1.0, 1.0);
            let p = UnaryParams::new(op, n, a, b);
            let (mut y, mut dx) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            unary_fast(&p, &x, &mut y);
            unary_backward_fast(&p, &x, &y, &g, &mut dx);
            let same = |u: &[f32], v: &[f32]| u.len() == v.len() && u.iter().zip(v).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same(&unary_fast_new(&p, &x), &y), "{} forward, n = {n}", op.name());
            assert!(same(&unary_backward_fast_new(&p, &x, &y, &g), &dx), "{} backward, n = {n}", op.name());
        }
    }
}

#[test]
fn unary_backward_matches_finite_diff_cpu() {
    for op in UnaryOp::ALL {
        let (lo, hi) = range(op);
        let (a, b) = constants(op);
        // Keep inputs away from kinks (0 for relu/leaky/abs, clamp bounds) by more than the FD step.
        let x: Vec<f32> = random_vec(op as u64 + 7, 24, lo.max(-4.0), hi.min(4.0))
            .into_iter()
            .map(|v| {
                if v.abs() < 0.01 || (v + 1.5).abs() < 0.01 || (v - 2.5).abs() < 0.01 {
                    v + 0.05
                } else {
                    v
                }
            })
            .collect();
        check_grads(
            op.name(),
            &[(x, vec![4, 6])],
            move |tape, v| ag::unary(tape, op, &v[0], a, b),
            move |xs| {
                xs[0]
                    .iter()
                    .map(|&v| forward_f64(op, a as f64, b as f64, v))
                    .collect()
            },
        );
    }
}

#[test]
fn unary_kink_conventions_cpu() -> Result<()> {
    // relu'(0) = 0; leaky'(0) = slope; abs'(0) = 0; clamp passes the gradient at its bounds.
    let x = t(&[0.0, -1.0, 2.5, 3.0], &[4]);
    let g = t(&[1.0; 4], &[4]);
    let back = |op: UnaryOp, a: f32, b: f32| -> Result<Vec<f32>> {
        let y = ops::unary(op, &x, a, b)?;
        Ok(vals(&ops::unary_backward(op, &x, &y, &g, a, b)?))
    };
    assert_eq!(back(UnaryOp::Relu, 0.0, 0.0)?, [0.0, 0.0, 1.0, 1.0]);
    assert_eq!(back(UnaryOp::LeakyRelu, 0.2, 0.0)?, [0.2, 0.2, 1.0, 1.0]);
    assert_eq!(back(UnaryOp::Abs, 0.0, 0.0)?, [0.0, -1.0, 1.0, 1.0]);
    assert_eq!(back(UnaryOp::Clamp, -1.0, 2.5)?, [1.0, 1.0, 1.0, 0.0]);
    Ok(())
}

#[test]
fn unary_rejects_bad_inputs_cpu() -> Result<()> {
    let err = clamp(&t(&[1.0], &[1]), 2.0, 1.0).unwrap_err().to_string();
    assert!(err.contains("min 2") && err.contains("max 1"), "{err}");
    let err = relu(&Tensor::from_u32(vec![1], &[1])?)
        .unwrap_err()
        .to_string();
    assert!(err.contains("relu") && err.contains("U32"), "{err}");
    let x = t(&[1.0, 2.0], &[2]);
    let err = ops::unary_backward(UnaryOp::Exp, &x, &x, &t(&[1.0], &[1]), 0.0, 0.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gradient") && err.contains("[1]"), "{err}");
    Ok(())
}
