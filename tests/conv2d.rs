//! Conv2d (NCHW, weight [out, in, kh, kw]): a numpy literal case, the im2col+GEMM fast path
//! against the direct f64 loops (forward and all three gradients) on odd configurations and on
//! the model's real shapes (spec §2.4 decoder, §4.1 FDM, §6.5 discriminator), backward against
//! f64 finite differences, the autograd node, and shape errors.
use fdm::autograd::{conv as ag, Tape};
use fdm::cpu::ops::conv2d::*;
use fdm::cpu::ops::conv2d_weight_grad::conv2d_weight_grad_stride1;
use fdm::cpu::ops::gemm_kernel::MicroKernel;
use fdm::ops::conv;
use fdm::params::conv2d::Conv2dParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, assert_grad_close, finite_diff, random_vec, TOL_CPU_F32};
use fdm::Tensor;

/// Random x in [-1, 1], w in +-1/sqrt(fan_in) (PyTorch-like scale: outputs stay O(1), so the
/// f32 sums' rounding stays far below the 1e-5 tolerance), b in [-1, 1].
fn inputs(p: &Conv2dParams, seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let s = 1.0 / (p.col_rows() as f32).sqrt();
    let x = random_vec(seed, p.batch as usize * p.in_image_len(), -1.0, 1.0);
    (x, random_vec(seed + 1, p.weight_len(), -s, s), random_vec(seed + 2, p.out_channels as usize, -1.0, 1.0))
}

fn params(n: usize, c: usize, hw: (usize, usize), o: usize, k: usize, stride: usize, pad: usize) -> Conv2dParams {
    Conv2dParams::new(n, c, hw, o, (k, k), stride, pad, true)
}

// Literal values from a numpy direct loop:
//   def conv2d(x, w, b, s, p):
//       N, C, H, W = x.shape; O, _, KH, KW = w.shape
//       xp = np.zeros((N, C, H + 2*p, W + 2*p)); xp[:, :, p:p+H, p:p+W] = x
//       OH, OW = (H + 2*p - KH)//s + 1, (W + 2*p - KW)//s + 1
//       y = np.zeros((N, O, OH, OW))
//       for n in range(N):
//           for o in range(O):
//               for i in range(OH):
//                   for j in range(OW):
//                       y[n, o, i, j] = b[o] + np.sum(xp[n, :, i*s:i*s+KH, j*s:j*s+KW] * w[o])
//       return y
//   x = (np.arange(32).reshape(1, 2, 4, 4) % 5 - 2) / 2
//   w = (np.arange(54).reshape(3, 2, 3, 3) % 7 - 3) / 4
//   b = np.array([0.5, -1.0, 0.25])
//   print(conv2d(x, w, b, 2, 1).ravel().tolist())
#[test]
fn conv2d_literal_cpu() -> fdm::Result<()> {
    let x: Vec<f32> = (0..32).map(|v| ((v % 5) as f32 - 2.0) / 2.0).collect();
    let w: Vec<f32> = (0..54).map(|v| ((v % 7) as f32 - 3.0) / 4.0).collect();
    let b = vec![0.5, -1.0, 0.25];
    let want = [-0.375, 0.25, 1.875, 0.25, -1.0, -1.25, -1.125, -2.125, -0.625, 0.875, 0.375, -0.875];
    let y = conv::conv2d(&Tensor::from_vec(x.clone(), &[1, 2, 4, 4])?, &Tensor::from_vec(w.clone(), &[3, 2, 3, 3])?, Some(&Tensor::from_vec(b.clone(), &[3])?), 2, 1)?;
    assert_eq!(y.shape(), &[1, 3, 2, 2]);
    assert_close(&y.to_vec_f32()?, &want, TOL_CPU_F32, "conv2d literal (fast)");
    let mut r = vec![0.0; 12];
    conv2d_ref(&params(1, 2, (4, 4), 3, 3, 2, 1), &x, &w, Some(&b), &mut r);
    assert_close(&r, &want, TOL_CPU_F32, "conv2d literal (ref)");
    Ok(())
}

/// Forward and all three gradients, fast vs ref.
fn check_fast_vs_ref(p: &Conv2dParams, seed: u64, with_backward: bool) {
    let (x, w, b) = inputs(p, seed);
    let ylen = p.batch as usize * p.out_image_len();
    let (mut want, mut got) = (vec![0.0; ylen], vec![f32::NAN; ylen]);
    conv2d_ref(p, &x, &w, Some(&b), &mut want);
    conv2d_fast(p, &x, &w, Some(&b), &mut got);
    assert_close(&got, &want, TOL_CPU_F32, &format!("forward {p:?}"));
    if !with_backward {
        return;
    }
    // g scaled by 1/sqrt(positions summed into dW) so dW stays O(1) like the forward.
    let positions = (p.batch as usize * p.out_plane()) as f32;
    let g = random_vec(seed + 7, ylen, -1.0 / positions.sqrt(), 1.0 / positions.sqrt());
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_ref(p, &x, &w, &g, &mut dx, &mut dw, &mut db);
    let (mut fdx, mut fdw, mut fdb) = (vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
    conv2d_backward_input_fast(p, &w, &g, &mut fdx);
    conv2d_backward_weight_fast(p, &x, &g, &mut fdw);
    conv2d_backward_bias_fast(p, &g, &mut fdb);
    assert_close(&fdx, &dx, TOL_CPU_F32, &format!("dx {p:?}"));
    assert_close(&fdw, &dw, TOL_CPU_F32, &format!("dw {p:?}"));
    assert_close(&fdb, &db, TOL_CPU_F32, &format!("db {p:?}"));
}

#[test]
fn conv2d_fast_matches_ref_odd_configs_cpu() {
    // (n, c, (h, w), o, k, stride, pad): odd sizes, every stride/pad mix, pointwise path,
    // kernel as large as the padded input, non-square images.
    let configs = [
        (2, 3, (5, 5), 4, 3, 2, 1),
        (1, 5, (7, 9), 6, 3, 1, 1),
        (2, 4, (8, 8), 3, 4, 2, 1),
        (1, 3, (6, 5), 2, 5, 3, 2),
        (3, 7, (4, 6), 5, 1, 1, 0),
        (1, 2, (5, 4), 3, 1, 2, 0),
        (1, 2, (3, 3), 2, 5, 1, 1),
        (2, 17, (11, 13), 19, 4, 1, 1),
    ];
    for (i, &(n, c, hw, o, k, s, pad)) in configs.iter().enumerate() {
        check_fast_vs_ref(&params(n, c, hw, o, k, s, pad), 10 + 10 * i as u64, true);
    }
}

#[test]
fn conv2d_stride1_in_place_edges_cpu() {
    // The stride-1 path reads the padded input in place (`gemm_rows`): output widths below, at
    // and just past the micro-kernel's 16 columns (and 33), channel counts that are not
    // multiples of its 6 rows, a 1x1 kernel with padding (not pointwise, so it takes this path),
    // 2x2 and 3x3 kernels with pad 0, 1 and 2, rectangular images, no bias.
    let configs = [
        (1, 3, (5, 16), 7, 3, 1, 1),
        (1, 2, (4, 17), 5, 3, 1, 1),
        (2, 4, (3, 33), 13, 3, 1, 1),
        (1, 5, (6, 6), 4, 1, 1, 1),
        (1, 6, (9, 7), 8, 2, 1, 0),
        (1, 3, (5, 5), 2, 3, 1, 2),
        (1, 9, (14, 15), 64, 3, 1, 0),
    ];
    for (i, &(n, c, hw, o, k, s, pad)) in configs.iter().enumerate() {
        check_fast_vs_ref(&params(n, c, hw, o, k, s, pad), 200 + 10 * i as u64, true);
    }
    let p = params(1, 4, (7, 9), 5, 3, 1, 1);
    let (x, w, _) = inputs(&p, 3);
    let (mut want, mut got) = (vec![0.0; p.out_image_len()], vec![f32::NAN; p.out_image_len()]);
    conv2d_ref(&p, &x, &w, None, &mut want);
    conv2d_fast(&p, &x, &w, None, &mut got);
    assert_close(&got, &want, TOL_CPU_F32, "stride-1 conv without bias");
}

#[test]
fn conv2d_strided_phase_planes_cpu() {
    // Strides that divide the kernel run as stride-1 convs over phase planes: odd padded sizes
    // (the last phase row and column are partly past the input), stride 3 with a 6x6 kernel,
    // pad 0 and pad 2, non-square images; forward and all three gradients against the loops.
    let configs = [(1, 3, (7, 9), 5, 4, 2, 1), (2, 2, (10, 8), 3, 6, 3, 2), (1, 4, (9, 6), 7, 4, 2, 0), (1, 2, (5, 5), 3, 4, 2, 2), (2, 6, (12, 11), 17, 4, 2, 1)];
    for (i, &(n, c, hw, o, k, s, pad)) in configs.iter().enumerate() {
        check_fast_vs_ref(&params(n, c, hw, o, k, s, pad), 400 + 10 * i as u64, true);
    }
}

#[test]
fn conv2d_weight_grad_in_place_every_kernel_cpu() {
    // The stride-1 weight gradient reads the column matrix's rows in place: with every
    // micro-kernel this CPU has (the others copy each A panel first), output rows longer than one
    // micro-kernel call (300 > 256 positions), output channels past one 16-wide panel and not a
    // multiple of it (19), row counts not a multiple of 6 (c * kh * kw = 5 * 4 * 4 = 80, 7), a
    // 1x1 kernel, pad 0 and pad = kernel - 1, rectangular kernels' worth of padding.
    let configs = [(2, 5, (3, 301), 19, 4, 1, 1), (1, 7, (6, 5), 3, 1, 1, 0), (1, 2, (9, 4), 17, 3, 1, 2), (2, 3, (5, 7), 33, 2, 1, 0)];
    for (i, &(n, c, hw, o, k, s, pad)) in configs.iter().enumerate() {
        let p = params(n, c, hw, o, k, s, pad);
        let (x, w, b) = inputs(&p, 300 + i as u64);
        let g = random_vec(310 + i as u64, n * p.out_image_len(), -0.1, 0.1);
        let (mut dx, mut want, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
        conv2d_backward_ref(&p, &x, &w, &g, &mut dx, &mut want, &mut db);
        for kernel in MicroKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let mut got = vec![f32::NAN; w.len()];
            conv2d_weight_grad_stride1(kernel, &p, &x, &g, &mut got);
            assert_close(&got, &want, TOL_CPU_F32, &format!("dw {kernel:?} {p:?}"));
        }
    }
}

/// Forward and all three gradients, fast vs the per-element oracles at `samples` random
/// elements of y, dx and dw each (the real shapes cost up to 2 G multiply-adds, too many for the
/// full loop oracle in a test run); db is checked in full.
fn check_sampled(p: &Conv2dParams, seed: u64, samples: usize) {
    let (x, w, b) = inputs(p, seed);
    let ylen = p.batch as usize * p.out_image_len();
    let positions = (p.batch as usize * p.out_plane()) as f32;
    let g = random_vec(seed + 7, ylen, -1.0 / positions.sqrt(), 1.0 / positions.sqrt());
    let (mut y, mut dx, mut dw, mut db) = (vec![f32::NAN; ylen], vec![f32::NAN; x.len()], vec![f32::NAN; w.len()], vec![f32::NAN; b.len()]);
    conv2d_fast(p, &x, &w, Some(&b), &mut y);
    conv2d_backward_input_fast(p, &w, &g, &mut dx);
    conv2d_backward_weight_fast(p, &x, &g, &mut dw);
    conv2d_backward_bias_fast(p, &g, &mut db);
    let mut rng = Rng::new(seed);
    let (c, h, wd, o, kh, kw) = (p.in_channels as usize, p.in_h as usize, p.in_w as usize, p.out_channels as usize, p.kernel_h as usize, p.kernel_w as usize);
    let (plane, ow) = (p.out_plane(), p.out_w as usize);
    let mut pick = |len: usize| rng.below(len as u64) as usize;
    let (mut got, mut want) = (vec![], vec![]);
    for _ in 0..samples {
        let k = pick(y.len());
        let (n, oc, q) = (k / (o * plane), (k / plane) % o, k % plane);
        got.push(y[k]);
        want.push(conv2d_ref_at(p, &x, &w, Some(&b), n, oc, q / ow, q % ow) as f32);
        let k = pick(dx.len());
        got.push(dx[k]);
        want.push(conv2d_backward_input_ref_at(p, &w, &g, k / (c * h * wd), (k / (h * wd)) % c, (k / wd) % h, k % wd) as f32);
        let k = pick(dw.len());
        got.push(dw[k]);
        want.push(conv2d_backward_weight_ref_at(p, &x, &g, k / (c * kh * kw), (k / (kh * kw)) % c, (k / kw) % kh, k % kw) as f32);
    }
    assert_close(&got, &want, TOL_CPU_F32, &format!("sampled y/dx/dw {p:?}"));
    // db in full, from the definition in f64.
    let plane_sum = |n: usize, c: usize| g[(n * o + c) * plane..][..plane].iter().map(|&e| e as f64).sum::<f64>();
    let ref_db: Vec<f32> = (0..o).map(|c| (0..p.batch as usize).map(|n| plane_sum(n, c)).sum::<f64>() as f32).collect();
    assert_close(&db, &ref_db, TOL_CPU_F32, "db");
}

#[test]
fn conv2d_fast_matches_ref_model_shapes_cpu() {
    // In full: the decoder's 1x1 128->256 at 32x32, the discriminator's 4x4 s1 p1 head and the
    // post conv 3x3 64->3 at 256x256 (only 3 output channels: the GEMM's thinnest case).
    check_fast_vs_ref(&params(1, 128, (32, 32), 256, 1, 1, 0), 2, true);
    check_fast_vs_ref(&params(2, 256, (8, 8), 1, 4, 1, 1), 7, true);
    check_fast_vs_ref(&params(1, 64, (256, 256), 3, 3, 1, 1), 9, false);
    // Sampled: FDM mix.0 (257->256), 3x3 256->256 (batch 2) and 256->128 at 32x32, 1x1
    // 256->256, the reference branch's 3x3 3->64 and the decoder's 3x3 64->64 at 256x256, the
    // reference branch's 4x4 s2 p1 convs
    // (64->128 256->128, 128->256 64->32).
    check_sampled(&params(1, 257, (32, 32), 256, 3, 1, 1), 4, 300);
    check_sampled(&params(2, 256, (32, 32), 256, 3, 1, 1), 5, 300);
    check_sampled(&params(1, 256, (32, 32), 128, 3, 1, 1), 1, 300);
    check_sampled(&params(1, 256, (32, 32), 256, 1, 1, 0), 6, 300);
    check_sampled(&params(1, 3, (256, 256), 64, 3, 1, 1), 8, 300);
    // The decoder's full-resolution 3x3 64->64 (the benchmarked shape).
    check_sampled(&params(1, 64, (256, 256), 64, 3, 1, 1), 11, 300);
    check_sampled(&params(1, 64, (256, 256), 128, 4, 2, 1), 77, 300);
    check_sampled(&params(1, 128, (64, 64), 256, 4, 2, 1), 3, 300);
}

/// Analytic gradients (fast path, f32) of L = sum(conv2d(x, w, b) * r) against central
/// differences of the f64 oracle. L is linear in each input, so the differences are exact up
/// to f64 rounding and the only error left is the f32 arithmetic of the analytic side.
fn check_finite_differences(p: &Conv2dParams, seed: u64) {
    let (x, w, b) = inputs(p, seed);
    let r = random_vec(seed + 3, p.batch as usize * p.out_image_len(), -1.0, 1.0);
    let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
    let (x64, w64, b64, r64) = (to64(&x), to64(&w), to64(&b), to64(&r));
    let loss = |x: &[f64], w: &[f64], b: &[f64]| {
        let mut y = vec![0f64; r64.len()];
        conv2d_ref_f64(p, x, w, Some(b), &mut y);
        y.iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>()
    };
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_input_fast(p, &w, &r, &mut dx);
    conv2d_backward_weight_fast(p, &x, &r, &mut dw);
    conv2d_backward_bias_fast(p, &r, &mut db);
    let eps = 1e-3;
    assert_grad_close(&to64(&dx), &finite_diff(&x64, eps, |x| loss(x, &w64, &b64)), 1e-5, "dx");
    assert_grad_close(&to64(&dw), &finite_diff(&w64, eps, |w| loss(&x64, w, &b64)), 1e-5, "dw");
    assert_grad_close(&to64(&db), &finite_diff(&b64, eps, |b| loss(&x64, &w64, b)), 1e-5, "db");
    // The oracle backward too.
    let (mut rx, mut rw, mut rb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_ref(p, &x, &w, &r, &mut rx, &mut rw, &mut rb);
    assert_grad_close(&to64(&rx), &finite_diff(&x64, eps, |x| loss(x, &w64, &b64)), 1e-5, "ref dx");
    assert_grad_close(&to64(&rw), &finite_diff(&w64, eps, |w| loss(&x64, w, &b64)), 1e-5, "ref dw");
}

#[test]
fn conv2d_backward_matches_finite_differences_cpu() {
    check_finite_differences(&params(2, 3, (5, 5), 4, 3, 2, 1), 300);
    check_finite_differences(&params(1, 2, (6, 6), 3, 4, 2, 1), 310);
    check_finite_differences(&params(2, 3, (3, 4), 2, 1, 1, 0), 320);
}

#[test]
fn conv2d_autograd_gradients_match_finite_differences_cpu() -> fdm::Result<()> {
    // y = conv2d(conv2d(x, w1, b1, s2 p1), w2, b2, s1 p1); gradients of sum(y * r) through the
    // tape for every leaf, against central differences of the two f64 oracles composed.
    let p1 = params(2, 3, (6, 6), 4, 3, 2, 1);
    let p2 = params(2, 4, (3, 3), 2, 3, 1, 1);
    let (x, w1, b1) = inputs(&p1, 500);
    let (_, w2, b2) = inputs(&p2, 510);
    let r = random_vec(520, 2 * p2.out_image_len(), -1.0, 1.0);
    let tape = Tape::new();
    let xv = tape.var(Tensor::from_vec(x.clone(), &[2, 3, 6, 6])?);
    let w1v = tape.var(Tensor::from_vec(w1.clone(), &[4, 3, 3, 3])?);
    let b1v = tape.var(Tensor::from_vec(b1.clone(), &[4])?);
    let w2v = tape.var(Tensor::from_vec(w2.clone(), &[2, 4, 3, 3])?);
    let b2v = tape.constant(Tensor::from_vec(b2.clone(), &[2])?);
    let h = ag::conv2d(&tape, &xv, &w1v, Some(&b1v), 2, 1)?;
    let y = ag::conv2d(&tape, &h, &w2v, Some(&b2v), 1, 1)?;
    assert_eq!(y.shape(), &[2, 2, 3, 3]);
    let grads = tape.backward_with(&y, Tensor::from_vec(r.clone(), y.shape())?)?;
    assert!(grads.get(&b2v).is_none(), "a constant bias gets no gradient");

    let to64 = |v: &[f32]| v.iter().map(|&e| e as f64).collect::<Vec<f64>>();
    let leaves = [to64(&x), to64(&w1), to64(&b1), to64(&w2)];
    let (b2_64, r64) = (to64(&b2), to64(&r));
    let loss = |l: &[Vec<f64>]| {
        let mut h = vec![0f64; 2 * p1.out_image_len()];
        conv2d_ref_f64(&p1, &l[0], &l[1], Some(&l[2]), &mut h);
        let mut y = vec![0f64; r64.len()];
        conv2d_ref_f64(&p2, &h, &l[3], Some(&b2_64), &mut y);
        y.iter().zip(&r64).map(|(a, b)| a * b).sum::<f64>()
    };
    for (i, (var, name)) in [(&xv, "x"), (&w1v, "w1"), (&b1v, "b1"), (&w2v, "w2")].into_iter().enumerate() {
        let numeric = finite_diff(&leaves[i], 1e-3, |v| {
            let mut l = leaves.clone();
            l[i] = v.to_vec();
            loss(&l)
        });
        assert_grad_close(&to64(&grads.expect(var, name)?.to_vec_f32()?), &numeric, 1e-5, name);
    }
    Ok(())
}

#[test]
fn conv2d_rejects_bad_shapes_cpu() -> fdm::Result<()> {
    let x = Tensor::zeros(&[1, 3, 4, 4]);
    let err = |r: fdm::Result<Tensor>| r.unwrap_err().to_string();
    let e = err(conv::conv2d(&x, &Tensor::zeros(&[8, 4, 3, 3]), None, 1, 1));
    assert!(e.contains("3 channels") && e.contains("expects 4"), "{e}");
    let e = err(conv::conv2d(&x, &Tensor::zeros(&[8, 3, 7, 7]), None, 1, 1));
    assert!(e.contains("kernel 7x7 larger than padded input 6x6"), "{e}");
    let e = err(conv::conv2d(&x, &Tensor::zeros(&[8, 3, 3, 3]), None, 0, 1));
    assert!(e.contains("stride"), "{e}");
    let e = err(conv::conv2d(&x, &Tensor::zeros(&[8, 3, 3, 3]), Some(&Tensor::zeros(&[3])), 1, 1));
    assert!(e.contains("bias must be [8]"), "{e}");
    let e = err(conv::conv2d(&Tensor::zeros(&[3, 4, 4]), &Tensor::zeros(&[8, 3, 3, 3]), None, 1, 1));
    assert!(e.contains("rank 4"), "{e}");
    let e = err(conv::conv2d_backward_input(&[1, 3, 4, 4], &Tensor::zeros(&[8, 3, 3, 3]), &Tensor::zeros(&[1, 8, 3, 3]), 1, 1));
    assert!(e.contains("grad_out [1, 8, 3, 3]") && e.contains("[1, 8, 4, 4]"), "{e}");
    Ok(())
}

#[test]
fn conv2d_tensor_backward_matches_cpu_functions_cpu() -> fdm::Result<()> {
    // The Tensor-level backward (including a non-contiguous grad_out) agrees with the slices.
    let p = params(2, 3, (5, 5), 4, 3, 2, 1);
    let (x, w, _) = inputs(&p, 900);
    let g = random_vec(901, 2 * p.out_image_len(), -1.0, 1.0);
    let (xt, wt) = (Tensor::from_vec(x.clone(), &[2, 3, 5, 5])?, Tensor::from_vec(w.clone(), &[4, 3, 3, 3])?);
    // g stored as [2, 4, 3, 3] but handed over as a transposed view of a [2, 4, 3, 3] tensor.
    let gt = Tensor::from_vec(g.clone(), &[2, 4, 3, 3])?.transpose(2, 3)?.contiguous()?.transpose(2, 3)?;
    let (dx, dw, db) = conv::conv2d_backward(&xt, &wt, &gt, 2, 1)?;
    let (mut rx, mut rw, mut rb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; 4]);
    conv2d_backward_ref(&p, &x, &w, &g, &mut rx, &mut rw, &mut rb);
    assert_close(&dx.to_vec_f32()?, &rx, TOL_CPU_F32, "dx");
    assert_close(&dw.to_vec_f32()?, &rw, TOL_CPU_F32, "dw");
    assert_close(&db.to_vec_f32()?, &rb, TOL_CPU_F32, "db");
    Ok(())
}
