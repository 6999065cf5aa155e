//! ConvTranspose2d (NCHW, weight [in, out, kh, kw]): a numpy literal case, the GEMM+col2im fast
//! path against the direct f64 loops (forward and all three gradients) on odd configurations
//! and the decoder's real 4x4 stride-2 shapes (spec §2.4), backward against f64 finite
//! differences, the autograd node, and shape errors.
use fdm::autograd::{conv as ag, Tape};
use fdm::cpu::ops::conv_transpose2d::*;
use fdm::ops::conv;
use fdm::params::conv_transpose2d::ConvTranspose2dParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, assert_grad_close, finite_diff, random_vec, TOL_CPU_F32};
use fdm::Tensor;

fn params(n: usize, c: usize, hw: (usize, usize), o: usize, k: usize, stride: usize, pad: usize) -> ConvTranspose2dParams {
    ConvTranspose2dParams::new(n, c, hw, o, (k, k), stride, pad, true)
}

/// Random x in [-1, 1], w in +-1/sqrt(c*kh*kw) (outputs O(1)), b in [-1, 1], and an output
/// gradient scaled by 1/sqrt(positions summed into dW) so dW is O(1) too.
fn inputs(p: &ConvTranspose2dParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let s = 1.0 / ((p.in_channels * p.kernel_h * p.kernel_w) as f32).sqrt();
    let x = random_vec(seed, p.batch as usize * p.in_image_len(), -1.0, 1.0);
    let gs = 1.0 / ((p.batch * p.in_h * p.in_w) as f32).sqrt();
    let g = random_vec(seed + 3, p.batch as usize * p.out_image_len(), -gs, gs);
    (x, random_vec(seed + 1, p.weight_len(), -s, s), random_vec(seed + 2, p.out_channels as usize, -1.0, 1.0), g)
}

// Literal values from a numpy direct loop (scatter, then crop the padding):
//   def conv_transpose2d(x, w, b, s, p):
//       N, C, H, W = x.shape; _, O, KH, KW = w.shape
//       full = np.zeros((N, O, (H-1)*s + KH, (W-1)*s + KW))
//       for n in range(N):
//           for c in range(C):
//               for i in range(H):
//                   for j in range(W):
//                       full[n, :, i*s:i*s+KH, j*s:j*s+KW] += x[n, c, i, j] * w[c]
//       OH, OW = full.shape[2] - 2*p, full.shape[3] - 2*p
//       return full[:, :, p:p+OH, p:p+OW] + b[None, :, None, None]
//   xt = (np.arange(8).reshape(1, 2, 2, 2) - 3) / 2
//   wt = (np.arange(96).reshape(2, 3, 4, 4) % 5 - 2) / 4
//   bt = np.array([0.25, 0.0, -0.5])
//   print(conv_transpose2d(xt, wt, bt, 2, 1).ravel().tolist())
const LITERAL: [f32; 48] = [
    1.125, 0.375, 0.75, 1.0, 0.375, 0.375, 0.875, 0.0, 0.375, -0.125, 0.375, 0.75, 0.0, 0.375, 1.125, 0.75, 0.625, 0.5, 0.25, -0.5, 0.125, 0.625, -0.75, 0.25,
    0.125, 0.125, 0.625, -0.25, 0.625, 0.875, -0.25, 1.0, -0.75, -0.25, -1.75, -1.0, -0.375, -1.25, -0.125, -1.0, -0.375, 0.125, -1.25, -0.25, 0.375, -0.75, 0.0, -1.5,
];

#[test]
fn conv_transpose2d_literal_cpu() -> fdm::Result<()> {
    let x: Vec<f32> = (0..8).map(|v| (v as f32 - 3.0) / 2.0).collect();
    let w: Vec<f32> = (0..96).map(|v| ((v % 5) as f32 - 2.0) / 4.0).collect();
    let b = vec![0.25, 0.0, -0.5];
    let xt = Tensor::from_vec(x.clone(), &[1, 2, 2, 2])?;
    let y = conv::conv_transpose2d(&xt, &Tensor::from_vec(w.clone(), &[2, 3, 4, 4])?, Some(&Tensor::from_vec(b.clone(), &[3])?), 2, 1)?;
    assert_eq!(y.shape(), &[1, 3, 4, 4]);
    assert_close(&y.to_vec_f32()?, &LITERAL, TOL_CPU_F32, "conv_transpose2d literal (fast)");
    let mut r = vec![0.0; 48];
    conv_transpose2d_ref(&params(1, 2, (2, 2), 3, 4, 2, 1), &x, &w, Some(&b), &mut r);
    assert_close(&r, &LITERAL, TOL_CPU_F32, "conv_transpose2d literal (ref)");
    Ok(())
}

/// Forward and the three gradients, fast vs the full loop oracles.
fn check_fast_vs_ref(p: &ConvTranspose2dParams, seed: u64) {
    let (x, w, b, g) = inputs(p, seed);
    let (mut want, mut got) = (vec![0.0; g.len()], vec![f32::NAN; g.len()]);
    conv_transpose2d_ref(p, &x, &w, Some(&b), &mut want);
    conv_transpose2d_fast(p, &x, &w, Some(&b), &mut got);
    assert_close(&got, &want, TOL_CPU_F32, &format!("forward {p:?}"));
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv_transpose2d_backward_ref(p, &x, &w, &g, &mut dx, &mut dw, &mut db);
    let (mut fdx, mut fdw, mut fdb) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
    conv_transpose2d_backward_input_fast(p, &w, &g, &mut fdx);
    conv_transpose2d_backward_weight_fast(p, &x, &g, &mut fdw);
    conv_transpose2d_backward_bias_fast(p, &g, &mut fdb);
    assert_close(&fdx, &dx, TOL_CPU_F32, &format!("dx {p:?}"));
    assert_close(&fdw, &dw, TOL_CPU_F32, &format!("dw {p:?}"));
    assert_close(&fdb, &db, TOL_CPU_F32, &format!("db {p:?}"));
}

#[test]
fn conv_transpose2d_fast_matches_ref_odd_configs_cpu() {
    // (n, c, (h, w), o, k, stride, pad)
    let configs = [
        (2, 3, (5, 5), 4, 3, 2, 1),
        (1, 5, (4, 7), 6, 4, 2, 1),
        (2, 4, (3, 3), 3, 3, 1, 1),
        (1, 3, (6, 5), 2, 5, 3, 2),
        (3, 7, (4, 6), 5, 1, 1, 0),
        (1, 2, (3, 4), 3, 2, 2, 0),
        (2, 17, (9, 7), 19, 4, 2, 1),
        // Stride-2 4x4 (the decoder's up-steps run as phase-plane convs) on odd sizes, and a
        // 6x6 kernel at stride 3.
        (1, 3, (5, 3), 4, 4, 2, 1),
        (1, 2, (4, 5), 3, 6, 3, 2),
    ];
    for (i, &(n, c, hw, o, k, s, pad)) in configs.iter().enumerate() {
        check_fast_vs_ref(&params(n, c, hw, o, k, s, pad), 10 + 10 * i as u64);
    }
}

/// Forward and gradients at `samples` random elements each against the per-element oracles
/// (the decoder's layers cost up to 2 G multiply-adds); db in full.
fn check_sampled(p: &ConvTranspose2dParams, seed: u64, samples: usize) {
    let (x, w, b, g) = inputs(p, seed);
    let (mut y, mut dx, mut dw, mut db) = (vec![f32::NAN; g.len()], vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
    conv_transpose2d_fast(p, &x, &w, Some(&b), &mut y);
    conv_transpose2d_backward_input_fast(p, &w, &g, &mut dx);
    conv_transpose2d_backward_weight_fast(p, &x, &g, &mut dw);
    conv_transpose2d_backward_bias_fast(p, &g, &mut db);
    let (c, h, wd, o) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize, p.out_channels as usize);
    let (oh, ow, kh, kw) = (p.out_h as usize, p.out_w as usize, p.kernel_h as usize, p.kernel_w as usize);
    let mut rng = Rng::new(seed);
    let mut pick = |len: usize| rng.below(len as u64) as usize;
    let (mut got, mut want) = (vec![], vec![]);
    for _ in 0..samples {
        let k = pick(y.len());
        got.push(y[k]);
        want.push(conv_transpose2d_ref_at(p, &x, &w, Some(&b), k / (o * oh * ow), (k / (oh * ow)) % o, (k / ow) % oh, k % ow) as f32);
        let k = pick(dx.len());
        got.push(dx[k]);
        want.push(conv_transpose2d_backward_input_ref_at(p, &w, &g, k / (c * h * wd), (k / (h * wd)) % c, (k / wd) % h, k % wd) as f32);
        let k = pick(dw.len());
        got.push(dw[k]);
        want.push(conv_transpose2d_backward_weight_ref_at(p, &x, &g, k / (o * kh * kw), (k / (kh * kw)) % o, (k / kw) % kh, k % kw) as f32);
    }
    assert_close(&got, &want, TOL_CPU_F32, &format!("sampled y/dx/dw {p:?}"));
    let plane_sum = |n: usize, c: usize| g[(n * o + c) * oh * ow..][..oh * ow].iter().map(|&e| e as f64).sum::<f64>();
    let ref_db: Vec<f32> = (0..o).map(|c| (0..p.batch as usize).map(|n| plane_sum(n, c)).sum::<f64>() as f32).collect();
    assert_close(&db, &ref_db, TOL_CPU_F32, "db");
}

#[test]
fn conv_transpose2d_fast_matches_ref_decoder_shapes_cpu() {
    // up_layers.0..2: 4x4 s2 p1, 256->256 32->64, 256->128 64->128, 128->64 128->256.
    check_sampled(&params(2, 256, (32, 32), 256, 4, 2, 1), 1, 300);
    check_sampled(&params(1, 256, (64, 64), 128, 4, 2, 1), 2, 300);
    check_sampled(&params(1, 128, (128, 128), 64, 4, 2, 1), 3, 300);
    // One decoder-like layer in full: 4x4 s2 p1, 64->32 at 16x16 -> 32x32.
    check_fast_vs_ref(&params(1, 64, (16, 16), 32, 4, 2, 1), 4);
}

/// Analytic gradients (fast, f32) of L = sum(y * r) against central differences of the f64
/// oracle; L is linear in each input, so the differences are exact up to f64 rounding.
fn check_finite_differences(p: &ConvTranspose2dParams, seed: u64) {
    let (x, w, b, _) = inputs(p, seed);
    let r = random_vec(seed + 5, p.batch as usize * p.out_image_len(), -1.0, 1.0);
    let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
    let (x64, w64, b64, r64) = (to64(&x), to64(&w), to64(&b), to64(&r));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0f64; r64.len()];
        conv_transpose2d_ref_f64(p, x, w, Some(b), &mut y);
        y.iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>()
    };
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv_transpose2d_backward_input_fast(p, &w, &r, &mut dx);
    conv_transpose2d_backward_weight_fast(p, &x, &r, &mut dw);
    conv_transpose2d_backward_bias_fast(p, &r, &mut db);
    let eps = 1e-3;
    let num_dx = finite_diff(&x64, eps, |x| loss(x, &w64, &b64));
    let num_dw = finite_diff(&w64, eps, |w| loss(&x64, w, &b64));
    assert_grad_close(&to64(&dx), &num_dx, 1e-5, "dx");
    assert_grad_close(&to64(&dw), &num_dw, 1e-5, "dw");
    assert_grad_close(&to64(&db), &finite_diff(&b64, eps, |b| loss(&x64, &w64, b)), 1e-5, "db");
    let (mut rx, mut rw, mut rb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv_transpose2d_backward_ref(p, &x, &w, &r, &mut rx, &mut rw, &mut rb);
    assert_grad_close(&to64(&rx), &num_dx, 1e-5, "ref dx");
    assert_grad_close(&to64(&rw), &num_dw, 1e-5, "ref dw");
}

#[test]
fn conv_transpose2d_backward_matches_finite_differences_cpu() {
    check_finite_differences(&params(2, 3, (3, 3), 2, 4, 2, 1), 300);
    check_finite_differences(&params(1, 2, (4, 3), 3, 3, 2, 1), 310);
    check_finite_differences(&params(2, 2, (3, 3), 2, 3, 1, 0), 320);
}

#[test]
fn conv_transpose2d_autograd_gradients_match_finite_differences_cpu() -> fdm::Result<()> {
    // y = conv_transpose2d(x, w, b, 4x4 s2 p1) with x a constant (no dx work) and with x a
    // variable; gradients of sum(y * r) through the tape against f64 central differences.
    let p = params(2, 3, (3, 3), 2, 4, 2, 1);
    let (x, w, b, _) = inputs(&p, 600);
    let r = random_vec(601, 2 * p.out_image_len(), -1.0, 1.0);
    let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
    let leaves = [to64(&x), to64(&w), to64(&b)];
    let r64 = to64(&r);
    let loss = |l: &[Vec<f64>]| {
        let mut y = vec![0f64; r64.len()];
        conv_transpose2d_ref_f64(&p, &l[0], &l[1], Some(&l[2]), &mut y);
        y.iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>()
    };
    for x_trainable in [true, false] {
        let tape = Tape::new();
        let xt = Tensor::from_vec(x.clone(), &[2, 3, 3, 3])?;
        let xv = if x_trainable { tape.var(xt) } else { tape.constant(xt) };
        let wv = tape.var(Tensor::from_vec(w.clone(), &[3, 2, 4, 4])?);
        let bv = tape.var(Tensor::from_vec(b.clone(), &[2])?);
        let y = ag::conv_transpose2d(&tape, &xv, &wv, Some(&bv), 2, 1)?;
        assert_eq!(y.shape(), &[2, 2, 6, 6]);
        let grads = tape.backward_with(&y, Tensor::from_vec(r.clone(), y.shape())?)?;
        assert_eq!(grads.get(&xv).is_some(), x_trainable);
        for (i, (var, name)) in [(&xv, "x"), (&wv, "w"), (&bv, "b")].into_iter().enumerate() {
            if i == 0 && !x_trainable {
                continue;
            }
            let numeric = finite_diff(&leaves[i], 1e-3, |v| {
                let mut l = leaves.clone();
                l[i] = v.to_vec();
                loss(&l)
            });
            assert_grad_close(&to64(&grads.expect(var, name)?.to_vec_f32()?), &numeric, 1e-5, name);
        }
    }
    Ok(())
}

#[test]
fn conv_transpose2d_rejects_bad_shapes_cpu() {
    let x = Tensor::zeros(&[1, 4, 3, 3]);
    let err = |r: fdm::Result<Tensor>| r.unwrap_err().to_string();
    // A Conv2d-layout weight [out, in, ..] for a 4 -> 8 layer: the in channels do not match.
    let e = err(conv::conv_transpose2d(&x, &Tensor::zeros(&[8, 4, 4, 4]), None, 2, 1));
    assert!(e.contains("4 channels") && e.contains("[in, out, kh, kw]") && e.contains("expects 8"), "{e}");
    let e = err(conv::conv_transpose2d(&Tensor::zeros(&[1, 4, 1, 1]), &Tensor::zeros(&[4, 8, 2, 2]), None, 2, 1));
    assert!(e.contains("padding 1 too large"), "{e}");
    let e = err(conv::conv_transpose2d(&x, &Tensor::zeros(&[4, 8, 4, 4]), Some(&Tensor::zeros(&[4])), 2, 1));
    assert!(e.contains("bias must be [8]"), "{e}");
    let e = err(conv::conv_transpose2d_backward_input(&[1, 4, 3, 3], &Tensor::zeros(&[4, 8, 4, 4]), &Tensor::zeros(&[1, 8, 3, 3]), 2, 1));
    assert!(e.contains("[1, 8, 6, 6]"), "{e}");
}
