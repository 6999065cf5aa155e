//! Backward of every loss (spec §3.5 / §6.5) against central finite differences of small f64
//! twins, through the tape; the composed style / hole-normalised losses; bad input.
use fdm::autograd::{losses as ag, Tape, Var};
use fdm::ops::{cross_entropy as ce, image_losses as img, losses as ops};
use fdm::params::losses::CROSS_ENTROPY_NO_IGNORE;
use fdm::testing::{assert_close, assert_grad_close, finite_diff, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

const GRAD_TOL: f64 = 1e-5;

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn grad_of(tape: &Tape, loss: &Var, v: &Var) -> Result<Vec<f64>> {
    let g = tape.backward(loss)?;
    Ok(f64s(&g.expect(v, "input")?.to_vec_f32()?))
}

#[test]
fn pair_losses_backward_matches_finite_differences_cpu() -> Result<()> {
    let n = 12;
    let (y, x) = (random_vec(1, n, -1., 1.), random_vec(2, n, -1., 1.));
    let yx: Vec<f64> = f64s(&y).into_iter().chain(f64s(&x)).collect();
    type Twin = fn(&[f64], &[f64]) -> f64;
    let l1: Twin = |a, b| a.iter().zip(b).map(|(p, q)| (p - q).abs()).sum::<f64>() / a.len() as f64;
    let mse: Twin =
        |a, b| a.iter().zip(b).map(|(p, q)| (p - q) * (p - q)).sum::<f64>() / a.len() as f64;
    for (name, twin) in [("l1", l1), ("mse", mse)] {
        let tape = Tape::new();
        let (yv, xv) = (
            tape.var(Tensor::from_vec(y.clone(), &[3, 4])?),
            tape.var(Tensor::from_vec(x.clone(), &[3, 4])?),
        );
        let loss = if name == "l1" {
            ag::l1_mean(&tape, &yv, &xv)?
        } else {
            ag::mse_mean(&tape, &yv, &xv)?
        };
        let g = tape.backward(&loss)?;
        let analytic: Vec<f64> = [&yv, &xv]
            .iter()
            .flat_map(|v| f64s(&g.expect(v, name).unwrap().to_vec_f32().unwrap()))
            .collect();
        let numeric = finite_diff(&yx, 1e-6, |z| twin(&z[..n], &z[n..]));
        assert_grad_close(&analytic, &numeric, GRAD_TOL, name);
    }
    Ok(())
}

#[test]
fn bce_and_hinge_backward_match_finite_differences_cpu() -> Result<()> {
    let n = 10;
    let p = random_vec(3, n, 0.05, 0.95);
    let tg = random_vec(4, n, 0., 1.);
    let tape = Tape::new();
    let pv = tape.var(Tensor::from_vec(p.clone(), &[n])?);
    let loss = ag::bce_mean(&tape, &pv, &Tensor::from_vec(tg.clone(), &[n])?)?;
    let twin = |z: &[f64]| -> f64 {
        z.iter()
            .zip(&tg)
            .map(|(&q, &t)| -(t as f64 * q.ln() + (1.0 - t as f64) * (1.0 - q).ln()))
            .sum::<f64>()
            / n as f64
    };
    assert_grad_close(
        &grad_of(&tape, &loss, &pv)?,
        &finite_diff(&f64s(&p), 1e-6, twin),
        GRAD_TOL,
        "bce",
    );

    let d = random_vec(5, n, -2., 2.);
    for (term, s) in [(ops::HingeTerm::Real, -1.0), (ops::HingeTerm::Fake, 1.0)] {
        let tape = Tape::new();
        let dv = tape.var(Tensor::from_vec(d.clone(), &[n])?);
        let loss = ag::hinge_d(&tape, &dv, term)?;
        let twin = |z: &[f64]| z.iter().map(|&v| (1.0 + s * v).max(0.0)).sum::<f64>() / n as f64;
        assert_grad_close(
            &grad_of(&tape, &loss, &dv)?,
            &finite_diff(&f64s(&d), 1e-6, twin),
            GRAD_TOL,
            "hinge",
        );
    }
    let tape = Tape::new();
    let dv = tape.var(Tensor::from_vec(d.clone(), &[n])?);
    let loss = ag::hinge_g(&tape, &dv)?;
    let twin = |z: &[f64]| -z.iter().sum::<f64>() / n as f64;
    assert_grad_close(
        &grad_of(&tape, &loss, &dv)?,
        &finite_diff(&f64s(&d), 1e-6, twin),
        GRAD_TOL,
        "hinge g",
    );
    Ok(())
}

/// f64 twin of the cross-entropy: plain mean over non-ignored rows or weighted sum.
fn ce_twin(z: &[f64], classes: usize, targets: &[u32], w: Option<&[f32]>, ignore: u32) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &t) in targets.iter().enumerate() {
        let r = &z[i * classes..][..classes];
        let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ce = m + r.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
            - if t == ignore { 0.0 } else { r[t as usize] };
        let wi = w.map_or(1.0, |w| w[i] as f64);
        if t != ignore {
            num += wi * ce;
        }
        den += if w.is_some() {
            wi
        } else {
            (t != ignore) as u32 as f64
        };
    }
    num / (den + if w.is_some() { 1e-18 } else { 0.0 })
}

#[test]
fn cross_entropy_backward_matches_finite_differences_cpu() -> Result<()> {
    let (rows, classes) = (6, 5);
    let logits = random_vec(6, rows * classes, -3., 3.);
    let targets = vec![0u32, 4, 7, 2, 1, 3]; // row 2 carries the ignore index 7
    let w = [1., 0., 1., 1., 0., 1.];
    for weighted in [false, true] {
        let tape = Tape::new();
        let lv = tape.var(Tensor::from_vec(logits.clone(), &[rows, classes])?);
        let tt = Tensor::from_u32(targets.clone(), &[rows])?;
        let loss = if weighted {
            ag::cross_entropy_weighted(&tape, &lv, &tt, &Tensor::from_vec(w.to_vec(), &[rows])?, 7)?
        } else {
            ag::cross_entropy(&tape, &lv, &tt, 7)?
        };
        let wopt = weighted.then_some(&w[..]);
        let want = ce_twin(&f64s(&logits), classes, &targets, wopt, 7);
        assert_close(
            &[loss.value().to_scalar()?],
            &[want as f32],
            TOL_CPU_F32,
            "ce value",
        );
        let numeric = finite_diff(&f64s(&logits), 1e-6, |z| {
            ce_twin(z, classes, &targets, wopt, 7)
        });
        assert_grad_close(&grad_of(&tape, &loss, &lv)?, &numeric, GRAD_TOL, "ce grad");
    }
    Ok(())
}

/// f64 twin of L_G for NCHW planes.
fn lg_twin(y: &[f64], x: &[f64], planes: usize, h: usize, w: usize) -> f64 {
    let mut s = 0.0;
    for k in 0..planes {
        let at = |i: usize, j: usize| k * h * w + i * w + j;
        for i in 0..h {
            for j in 0..w {
                if j + 1 < w {
                    s += ((y[at(i, j + 1)] - y[at(i, j)]).abs()
                        - (x[at(i, j + 1)] - x[at(i, j)]).abs())
                    .abs();
                }
                if i + 1 < h {
                    s += ((y[at(i + 1, j)] - y[at(i, j)]).abs()
                        - (x[at(i + 1, j)] - x[at(i, j)]).abs())
                    .abs();
                }
            }
        }
    }
    s / (2.0 * (planes * h * w) as f64)
}

#[test]
fn image_grad_loss_backward_matches_finite_differences_cpu() -> Result<()> {
    let shape = [2, 2, 3, 4];
    let n = 48;
    let (y, x) = (random_vec(7, n, 0., 1.), random_vec(8, n, 0., 1.));
    let tape = Tape::new();
    let (yv, xv) = (
        tape.var(Tensor::from_vec(y.clone(), &shape)?),
        tape.var(Tensor::from_vec(x.clone(), &shape)?),
    );
    let loss = ag::image_grad_loss(&tape, &yv, &xv)?;
    let g = tape.backward(&loss)?;
    let analytic: Vec<f64> = [&yv, &xv]
        .iter()
        .flat_map(|v| f64s(&g.expect(v, "L_G").unwrap().to_vec_f32().unwrap()))
        .collect();
    let yx: Vec<f64> = f64s(&y).into_iter().chain(f64s(&x)).collect();
    let numeric = finite_diff(&yx, 1e-6, |z| lg_twin(&z[..n], &z[n..], 4, 3, 4));
    assert_grad_close(&analytic, &numeric, GRAD_TOL, "L_G");
    Ok(())
}

/// f64 Gram of [b, c, hw] features.
fn gram_twin(phi: &[f64], b: usize, c: usize, hw: usize) -> Vec<f64> {
    let mut g = vec![0.0; b * c * c];
    for bb in 0..b {
        for i in 0..c {
            for j in 0..c {
                g[(bb * c + i) * c + j] = (0..hw)
                    .map(|t| phi[(bb * c + i) * hw + t] * phi[(bb * c + j) * hw + t])
                    .sum::<f64>()
                    / (hw * c) as f64;
            }
        }
    }
    g
}

#[test]
fn style_loss_composes_and_matches_finite_differences_cpu() -> Result<()> {
    // Two "layers" of different shapes; style = sum_k mean|G(y_k) - G(x_k)|.
    let shapes = [[2usize, 3, 2, 2], [1, 2, 3, 1]];
    let ys: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| random_vec(20 + k as u64, s.iter().product(), 0., 1.))
        .collect();
    let xs: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(k, s)| random_vec(30 + k as u64, s.iter().product(), 0., 1.))
        .collect();
    let tape = Tape::new();
    let yv: Vec<Var> = ys
        .iter()
        .zip(&shapes)
        .map(|(v, s)| tape.var(Tensor::from_vec(v.clone(), s).unwrap()))
        .collect();
    let xv: Vec<Var> = xs
        .iter()
        .zip(&shapes)
        .map(|(v, s)| tape.constant(Tensor::from_vec(v.clone(), s).unwrap()))
        .collect();
    let loss = ag::style_loss(&tape, &yv, &xv)?;
    let g = tape.backward(&loss)?;
    let analytic: Vec<f64> = yv
        .iter()
        .flat_map(|v| f64s(&g.expect(v, "y").unwrap().to_vec_f32().unwrap()))
        .collect();
    let flat: Vec<f64> = ys.iter().flat_map(|v| f64s(v)).collect();
    let twin = |z: &[f64]| -> f64 {
        let mut off = 0;
        let mut total = 0.0;
        for (s, x) in shapes.iter().zip(&xs) {
            let n: usize = s.iter().product();
            let (gy, gx) = (
                gram_twin(&z[off..off + n], s[0], s[1], s[2] * s[3]),
                gram_twin(&f64s(x), s[0], s[1], s[2] * s[3]),
            );
            total += gy.iter().zip(&gx).map(|(a, b)| (a - b).abs()).sum::<f64>() / gy.len() as f64;
            off += n;
        }
        total
    };
    assert_close(
        &[loss.value().to_scalar()?],
        &[twin(&flat) as f32],
        TOL_CPU_F32,
        "style value",
    );
    assert_grad_close(
        &analytic,
        &finite_diff(&flat, 1e-6, twin),
        GRAD_TOL,
        "style grad",
    );
    Ok(())
}

#[test]
fn l1_hole_normalised_and_weighted_sum_cpu() -> Result<()> {
    // mask [1, 1, 2, 2] with one hole of four pixels: hole fraction 1/4, so L1n = 4 * L1.
    let tape = Tape::new();
    let y = tape.var(Tensor::from_vec(
        vec![0.5, 0., 1., 0.25, 0., 0., 0., 1.],
        &[1, 2, 2, 2],
    )?);
    let x = tape.constant(Tensor::zeros(&[1, 2, 2, 2]));
    let mask = Tensor::from_vec(vec![1., 0., 1., 1.], &[1, 1, 2, 2])?;
    let l1n = ag::l1_hole_normalised(&tape, &y, &x, &mask)?;
    assert_close(
        &[l1n.value().to_scalar()?],
        &[4.0 * 2.75 / 8.0],
        TOL_CPU_F32,
        "L1n",
    );
    let mse = ag::mse_mean(&tape, &y, &x)?;
    let total = ag::weighted_sum(&tape, &[(&l1n, 1.0), (&mse, 5.0)])?;
    let want = 4.0 * 2.75 / 8.0 + 5.0 * (0.25 + 1. + 0.0625 + 1.) / 8.0;
    assert_close(
        &[total.value().to_scalar()?],
        &[want],
        TOL_CPU_F32,
        "weighted sum",
    );
    let g = tape.backward(&total)?.expect(&y, "y")?.to_vec_f32()?;
    // d/dy = 4 sign(y)/8 + 5 * 2 y / 8.
    let yv = [0.5f32, 0., 1., 0.25, 0., 0., 0., 1.];
    let want: Vec<f32> = yv
        .iter()
        .map(|&v| 0.5 * (v > 0.) as u32 as f32 + 10. * v / 8.)
        .collect();
    assert_close(&g, &want, TOL_CPU_F32, "grad through weighted sum");
    let err = ag::l1_hole_normalised(&tape, &y, &x, &Tensor::full(1.0, &[1, 1, 2, 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no hole"), "{err}");
    Ok(())
}

#[test]
fn losses_reject_bad_input_cpu() -> Result<()> {
    let a = Tensor::zeros(&[2, 3]);
    let err = ops::l1_mean(&a, &Tensor::zeros(&[3, 2]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("must have the shape"), "{err}");
    let logits = Tensor::zeros(&[4, 3]);
    let err = ce::cross_entropy(
        &logits,
        &Tensor::from_u32(vec![0, 1, 3, 2], &[4])?,
        CROSS_ENTROPY_NO_IGNORE,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("target 3 at row 2 is out of range"), "{err}");
    let err = ce::cross_entropy(&logits, &Tensor::from_u32(vec![0, 1], &[2])?, 9)
        .unwrap_err()
        .to_string();
    assert!(err.contains("leading shape"), "{err}");
    assert!(
        ce::cross_entropy(&logits, &Tensor::zeros(&[4]), 9).is_err(),
        "f32 targets are rejected"
    );
    let err = img::gram(&Tensor::zeros(&[2, 3, 4]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank 4"), "{err}");
    Ok(())
}
