//! The training ops (`fdm::ops::{losses, cross_entropy, optim, codebook, image_losses}` and the
//! attention backward at the tiny preset's head dim 32) dispatched to CUDA: the same call on
//! tensors that live on a CUDA device gives what it gives on the CPU (whole training steps are in
//! `cuda_train_steps.rs`). `emu::*` runs on the emulated CUDA device (the real dispatch, launchers and kernels on
//! the CPU emulator), `cuda::*` on a GPU (SKIP without one, a failure with FDM_REQUIRE_CUDA=1).
//! Tolerance TOL_CUDA_F32 (1e-4 abs + rel): the kernels sum in other orders than the CPU loops.

mod common;

use common::device::{on, rand, same};

use fdm::autograd::{losses as al, Tape};
use fdm::cuda::CudaDevice;
use fdm::ops;
use fdm::ops::codebook::CodebookEma;
use fdm::ops::losses::HingeTerm;
use fdm::optim::{clip_grad_norm, Ema, GradAccumulator};
use fdm::params::losses::CROSS_ENTROPY_NO_IGNORE;
use fdm::params::optim::AdamParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};
use fdm::Tensor;

device_tests!(
    elementwise_losses_forward_and_backward,
    hole_fraction_and_a_cpu_output_gradient,
    cross_entropy_model_shape_plain_ignore_and_weighted,
    cross_entropy_bad_target_is_an_error,
    adam_and_adamw_steps_leave_their_inputs_unchanged,
    ema_accumulate_and_clip_by_norm,
    codebook_ema_statistics_and_update,
    gram_and_style_loss_with_gradients,
    image_gradient_loss_and_its_gradients,
    attention_backward_head_dim_32
);

/// The values of `t` are still `want` (an op must not change its inputs).
#[track_caller]
fn unchanged(t: &Tensor, want: &Tensor, what: &str) {
    assert_eq!(
        t.to_vec_f32().unwrap(),
        want.to_vec_f32().unwrap(),
        "{what} was changed"
    );
}

fn elementwise_losses_forward_and_backward(dev: CudaDevice) {
    let shape = [2, 3, 17, 19];
    let (y, x) = (rand(1, &shape, -1.0, 1.0), rand(2, &shape, -1.0, 1.0));
    let p = rand(3, &shape, 0.01, 0.99);
    let t = Tensor::from_vec(
        random_vec(4, y.numel(), 0.0, 1.0)
            .iter()
            .map(|v| v.round())
            .collect(),
        &shape,
    )
    .unwrap();
    let g = Tensor::scalar(0.7);
    let [yd, xd, pd, td, gd] = [&y, &x, &p, &t, &g].map(|t| on(&dev, t));

    type Pair = fn(&Tensor, &Tensor) -> fdm::Result<Tensor>;
    type PairBwd = fn(&Tensor, &Tensor, &Tensor) -> fdm::Result<(Tensor, Tensor)>;
    let pairs: [(&str, Pair, PairBwd); 2] = [
        ("l1", ops::losses::l1_mean, ops::losses::l1_mean_backward),
        ("mse", ops::losses::mse_mean, ops::losses::mse_mean_backward),
    ];
    for (name, fwd, bwd) in pairs {
        same(
            &fwd(&yd, &xd).unwrap(),
            &fwd(&y, &x).unwrap(),
            &format!("{name} forward"),
        );
        let (want_y, want_x) = bwd(&y, &x, &g).unwrap();
        let (got_y, got_x) = bwd(&yd, &xd, &gd).unwrap();
        same(&got_y, &want_y, &format!("{name} d/dy"));
        same(&got_x, &want_x, &format!("{name} d/dx"));
    }
    // A strided (transposed) input is made dense first, as on the CPU.
    let yt = y.transpose(2, 3).unwrap();
    let xt = x.transpose(2, 3).unwrap();
    let (ytd, xtd) = (yd.transpose(2, 3).unwrap(), xd.transpose(2, 3).unwrap());
    same(
        &ops::losses::l1_mean(&ytd, &xtd).unwrap(),
        &ops::losses::l1_mean(&yt, &xt).unwrap(),
        "l1 of views",
    );

    same(
        &ops::losses::bce_mean(&pd, &td).unwrap(),
        &ops::losses::bce_mean(&p, &t).unwrap(),
        "bce forward",
    );
    let want = ops::losses::bce_mean_backward(&p, &t, &g).unwrap();
    same(
        &ops::losses::bce_mean_backward(&pd, &td, &gd).unwrap(),
        &want,
        "bce d/dp",
    );

    for term in [HingeTerm::Real, HingeTerm::Fake] {
        same(
            &ops::losses::hinge_mean(&yd, term).unwrap(),
            &ops::losses::hinge_mean(&y, term).unwrap(),
            &format!("hinge {term:?}"),
        );
        let want = ops::losses::hinge_mean_backward(&y, term, &g).unwrap();
        same(
            &ops::losses::hinge_mean_backward(&yd, term, &gd).unwrap(),
            &want,
            &format!("hinge {term:?} backward"),
        );
    }
    same(
        &ops::losses::mean_scaled(&yd, -1.0).unwrap(),
        &ops::losses::mean_scaled(&y, -1.0).unwrap(),
        "mean_scaled",
    );
    let want = ops::losses::mean_scaled_backward(&y, -1.0, &g).unwrap();
    same(
        &ops::losses::mean_scaled_backward(&yd, -1.0, &gd).unwrap(),
        &want,
        "mean_scaled backward",
    );

    // The autograd nodes built on them: the hinge generator loss and BCE against a constant.
    let tape = Tape::new();
    let (vy, vp) = (tape.var(yd.clone()), tape.var(pd.clone()));
    let loss = al::weighted_sum(
        &tape,
        &[
            (&al::hinge_g(&tape, &vy).unwrap(), 1.0),
            (&al::bce_mean_with_value(&tape, &vp, 1.0).unwrap(), 0.5),
        ],
    )
    .unwrap();
    let grads = tape.backward(&loss).unwrap();
    let ct = Tape::new();
    let (cy, cp) = (ct.var(y.clone()), ct.var(p.clone()));
    let closs = al::weighted_sum(
        &ct,
        &[
            (&al::hinge_g(&ct, &cy).unwrap(), 1.0),
            (&al::bce_mean_with_value(&ct, &cp, 1.0).unwrap(), 0.5),
        ],
    )
    .unwrap();
    let cgrads = ct.backward(&closs).unwrap();
    same(loss.value(), closs.value(), "tape loss");
    same(
        grads.get(&vy).unwrap(),
        cgrads.get(&cy).unwrap(),
        "tape d/dy",
    );
    same(
        grads.get(&vp).unwrap(),
        cgrads.get(&cp).unwrap(),
        "tape d/dp",
    );
}

fn hole_fraction_and_a_cpu_output_gradient(dev: CudaDevice) {
    let m: Vec<f32> = random_vec(5, 2 * 64 * 64, 0.0, 1.0)
        .iter()
        .map(|v| (*v > 0.3) as u8 as f32)
        .collect();
    let mask = Tensor::from_vec(m, &[2, 1, 64, 64]).unwrap();
    let want = ops::losses::hole_fraction(&mask).unwrap();
    let got = ops::losses::hole_fraction(&on(&dev, &mask)).unwrap();
    assert_close(&[got], &[want], TOL_CUDA_F32, "hole fraction");
    let err = ops::losses::hole_fraction(&on(&dev, &Tensor::full(1.0, &[1, 1, 4, 4])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no hole pixel"), "{err}");

    // The hole-normalised L1 of spec §6.5 through the tape.
    let shape = [2, 3, 64, 64];
    let (y, x) = (rand(8, &shape, 0.0, 1.0), rand(9, &shape, 0.0, 1.0));
    let run = |y: Tensor, x: Tensor, mask: Tensor| {
        let t = Tape::new();
        let (vy, vx) = (t.var(y), t.var(x));
        let loss = al::l1_hole_normalised(&t, &vy, &vx, &mask).unwrap();
        let g = t.backward(&loss).unwrap();
        [
            loss.value().clone(),
            g.get(&vy).unwrap().clone(),
            g.get(&vx).unwrap().clone(),
        ]
    };
    let want = run(y.clone(), x.clone(), mask.clone());
    let got = run(on(&dev, &y), on(&dev, &x), on(&dev, &mask));
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        same(a, b, &format!("L1n output {i}"));
    }

    // An output gradient that is a CPU constant is taken to the device; a wrong size is an Err.
    let (y, x) = (rand(6, &[40], -1.0, 1.0), rand(7, &[40], -1.0, 1.0));
    let (yd, xd) = (on(&dev, &y), on(&dev, &x));
    let g = Tensor::scalar(-2.5);
    let want = ops::losses::mse_mean_backward(&y, &x, &g).unwrap();
    let got = ops::losses::mse_mean_backward(&yd, &xd, &g).unwrap();
    same(&got.0, &want.0, "mse d/dy with a CPU g");
    let err = ops::losses::mse_mean_backward(&yd, &xd, &on(&dev, &Tensor::zeros(&[2])))
        .unwrap_err()
        .to_string();
    assert!(err.contains("one element"), "{err}");
}

fn cross_entropy_model_shape_plain_ignore_and_weighted(dev: CudaDevice) {
    // The transformer's logits: [1, 1024 tokens, 256 classes] (spec §3.5).
    let (rows, classes) = (1024, 256);
    let logits = rand(10, &[1, rows, classes], -4.0, 4.0);
    let mut rng = Rng::new(11);
    let ignore = 7u32;
    let targets: Vec<u32> = (0..rows)
        .map(|i| {
            if i % 5 == 0 {
                ignore
            } else {
                rng.below(classes as u64) as u32
            }
        })
        .collect();
    let targets = Tensor::from_u32(targets, &[1, rows]).unwrap();
    let weights = Tensor::from_vec(
        random_vec(12, rows, 0.0, 1.0)
            .iter()
            .map(|v| if *v > 0.5 { 1.0 } else { 0.0 })
            .collect(),
        &[1, rows],
    )
    .unwrap();
    let g = Tensor::scalar(1.3);
    let [ld, td, wd, gd] = [&logits, &targets, &weights, &g].map(|t| on(&dev, t));
    for ig in [ignore, CROSS_ENTROPY_NO_IGNORE] {
        let want = ops::cross_entropy::cross_entropy(&logits, &targets, ig).unwrap();
        same(
            &ops::cross_entropy::cross_entropy(&ld, &td, ig).unwrap(),
            &want,
            &format!("ce ignore {ig}"),
        );
        let want =
            ops::cross_entropy::cross_entropy_weighted(&logits, &targets, &weights, ig).unwrap();
        same(
            &ops::cross_entropy::cross_entropy_weighted(&ld, &td, &wd, ig).unwrap(),
            &want,
            &format!("weighted ce ignore {ig}"),
        );
        for w in [None, Some((&weights, &wd))] {
            let want = ops::cross_entropy::cross_entropy_backward(
                &logits,
                &targets,
                w.map(|w| w.0),
                ig,
                &g,
            )
            .unwrap();
            let got = ops::cross_entropy::cross_entropy_backward(&ld, &td, w.map(|w| w.1), ig, &gd)
                .unwrap();
            same(
                &got,
                &want,
                &format!("ce backward ignore {ig} weighted {}", w.is_some()),
            );
        }
    }
    // Every row ignored, and all weights zero: whatever the CPU gives (no row to average), the
    // device gives too.
    let all_ignored = Tensor::from_u32(vec![ignore; 8], &[8]).unwrap();
    let small = rand(14, &[8, 5], -1.0, 1.0);
    let zero_w = Tensor::zeros(&[8]);
    let (sd, ad, zd) = (on(&dev, &small), on(&dev, &all_ignored), on(&dev, &zero_w));
    let want = ops::cross_entropy::cross_entropy(&small, &all_ignored, ignore).unwrap();
    same(
        &ops::cross_entropy::cross_entropy(&sd, &ad, ignore).unwrap(),
        &want,
        "ce with every row ignored",
    );
    let want =
        ops::cross_entropy::cross_entropy_backward(&small, &all_ignored, None, ignore, &g).unwrap();
    let got = ops::cross_entropy::cross_entropy_backward(&sd, &ad, None, ignore, &gd).unwrap();
    same(&got, &want, "ce backward with every row ignored");
    let t8 = Tensor::from_u32(vec![0, 1, 2, 3, 4, 0, 1, 2], &[8]).unwrap();
    let t8d = on(&dev, &t8);
    let want = ops::cross_entropy::cross_entropy_weighted(&small, &t8, &zero_w, ignore).unwrap();
    same(
        &ops::cross_entropy::cross_entropy_weighted(&sd, &t8d, &zd, ignore).unwrap(),
        &want,
        "ce with zero weights",
    );
}

fn cross_entropy_bad_target_is_an_error(dev: CudaDevice) {
    let logits = on(&dev, &rand(13, &[4, 6], -1.0, 1.0));
    let targets = on(&dev, &Tensor::from_u32(vec![0, 5, 6, 1], &[4]).unwrap());
    let err = ops::cross_entropy::cross_entropy(&logits, &targets, CROSS_ENTROPY_NO_IGNORE)
        .unwrap_err()
        .to_string();
    assert!(err.contains("row 2"), "{err}");
    let cpu_targets = Tensor::from_u32(vec![0, 1, 2, 3], &[4]).unwrap();
    assert!(
        ops::cross_entropy::cross_entropy(&logits, &cpu_targets, 0).is_err(),
        "mixed devices"
    );
}

fn adam_and_adamw_steps_leave_their_inputs_unchanged(dev: CudaDevice) {
    let shape = [33, 65];
    let n = 33 * 65;
    let (param, grad) = (rand(20, &shape, -1.0, 1.0), rand(21, &shape, -0.1, 0.1));
    let (m, v) = (rand(22, &shape, -0.01, 0.01), rand(23, &shape, 0.0, 1e-4));
    let [pd, gd, md, vd] = [&param, &grad, &m, &v].map(|t| on(&dev, t));
    for (decoupled, wd, step) in [
        (false, 0.0, 1),
        (false, 0.01, 7),
        (true, 0.01, 3),
        (true, 0.0, 1000),
    ] {
        let p = AdamParams::new(n, 1e-3, (0.9, 0.95), 1e-8, wd, decoupled, step);
        let want = ops::optim::adam_step(&param, &grad, &m, &v, &p).unwrap();
        let got = ops::optim::adam_step(&pd, &gd, &md, &vd, &p).unwrap();
        let what = format!("adam decoupled {decoupled} wd {wd} step {step}");
        same(&got.0, &want.0, &format!("{what}: param"));
        same(&got.1, &want.1, &format!("{what}: exp_avg"));
        same(&got.2, &want.2, &format!("{what}: exp_avg_sq"));
        for (t, w, name) in [
            (&pd, &param, "param"),
            (&gd, &grad, "grad"),
            (&md, &m, "exp_avg"),
            (&vd, &v, "exp_avg_sq"),
        ] {
            unchanged(t, w, &format!("{what}: the input {name}"));
        }
    }
    let p = AdamParams::new(n + 1, 1e-3, (0.9, 0.999), 1e-8, 0.0, false, 1);
    assert!(
        ops::optim::adam_step(&pd, &gd, &md, &vd, &p).is_err(),
        "params for another size"
    );
}

fn ema_accumulate_and_clip_by_norm(dev: CudaDevice) {
    let (ema, param) = (
        rand(30, &[64, 33], -1.0, 1.0),
        rand(31, &[64, 33], -1.0, 1.0),
    );
    let (ed, pd) = (on(&dev, &ema), on(&dev, &param));
    same(
        &ops::optim::ema_update(&ed, &pd, 0.999).unwrap(),
        &ops::optim::ema_update(&ema, &param, 0.999).unwrap(),
        "ema",
    );
    unchanged(&ed, &ema, "the ema input");
    same(
        &ops::optim::accumulate(&ed, &pd).unwrap(),
        &ops::optim::accumulate(&ema, &param).unwrap(),
        "accumulate",
    );
    unchanged(&ed, &ema, "the accumulator input");
    same(
        &ops::optim::scale(&pd, 0.25).unwrap(),
        &ops::optim::scale(&param, 0.25).unwrap(),
        "scale",
    );
    unchanged(&pd, &param, "the scaled input");
    // A strided view is scaled as the CPU scales it (the logical order).
    let view = param.transpose(0, 1).unwrap();
    same(
        &ops::optim::scale(&pd.transpose(0, 1).unwrap(), 2.0).unwrap(),
        &ops::optim::scale(&view, 2.0).unwrap(),
        "scale of a view",
    );

    // sq_norm over 1M elements (many first-pass blocks), then the clipping path of training.
    let big = rand(32, &[1024, 1024], -1.0, 1.0);
    let (want, got) = (
        ops::optim::sq_norm(&big).unwrap(),
        ops::optim::sq_norm(&on(&dev, &big)).unwrap(),
    );
    assert!((want - got).abs() <= 1e-6 * want, "sq_norm {got} vs {want}");
    // Several sums of squares with one read-back: each equals its own reduction.
    let several = [rand(35, &[3], -1.0, 1.0), big.clone(), rand(36, &[1000, 3], -3.0, 3.0)];
    let on_dev: Vec<Tensor> = several.iter().map(|t| on(&dev, t)).collect();
    let got = ops::optim::sq_norms(&on_dev.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(got.len(), 3);
    for (i, (t, g)) in several.iter().zip(&got).enumerate() {
        let w = ops::optim::sq_norm(t).unwrap();
        assert!((w - g).abs() <= 1e-6 * w, "sq_norms[{i}] {g} vs {w}");
    }
    let grads = [rand(33, &[100, 7], -1.0, 1.0), rand(34, &[513], -2.0, 2.0)];
    let mut cpu: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
    let mut gpu: Vec<Option<Tensor>> = grads.iter().map(|t| Some(on(&dev, t))).collect();
    let (nc, ng) = (
        clip_grad_norm(&mut cpu, 1.0).unwrap(),
        clip_grad_norm(&mut gpu, 1.0).unwrap(),
    );
    assert_close(&[ng], &[nc], TOL_CUDA_F32, "total norm");
    for (i, (a, b)) in gpu.iter().zip(&cpu).enumerate() {
        same(
            a.as_ref().unwrap(),
            b.as_ref().unwrap(),
            &format!("clipped gradient {i}"),
        );
    }
    // The weight EMA of the training loop over device parameters.
    let mut ec = Ema::new(0.99, &[ema.clone()]);
    let mut eg = Ema::new(0.99, &[ed.clone()]);
    for _ in 0..3 {
        ec.update(&[param.clone()]).unwrap();
        eg.update(&[pd.clone()]).unwrap();
    }
    same(&eg.averages()[0], &ec.averages()[0], "Ema after 3 updates");

    // Gradient accumulation over two micro-batches (its first sum is the micro-batch's own
    // gradient tensor, which must not change when the second is added).
    let (g1, g2) = (rand(35, &[17, 9], -1.0, 1.0), rand(36, &[17, 9], -1.0, 1.0));
    let mut ac = GradAccumulator::new(1);
    let mut ag = GradAccumulator::new(1);
    let g1d = on(&dev, &g1);
    for (c, d) in [(&g1, g1d.clone()), (&g2, on(&dev, &g2))] {
        ac.add(&[Some(c.clone())]).unwrap();
        ag.add(&[Some(d)]).unwrap();
    }
    let (mc, mg) = (ac.finish().unwrap(), ag.finish().unwrap());
    same(
        mg[0].as_ref().unwrap(),
        mc[0].as_ref().unwrap(),
        "accumulated mean gradient",
    );
    unchanged(&g1d, &g1, "the first micro-batch's gradient");
}

fn codebook_ema_statistics_and_update(dev: CudaDevice) {
    // The tiny preset's codebook: 512 codes of 64; 1024 rows of z (one 32 x 32 feature map).
    let (n, k, d) = (1024, 512, 64);
    let z = rand(40, &[n, d], -1.0, 1.0);
    let mut rng = Rng::new(41);
    let idx = Tensor::from_u32(
        (0..n).map(|_| rng.below(k as u64 / 2) as u32).collect(),
        &[n],
    )
    .unwrap();
    let (zd, idxd) = (on(&dev, &z), on(&dev, &idx));
    let (counts, sums) = ops::codebook::codebook_assignment_stats(&z, &idx, k).unwrap();
    let (cd, sd) = ops::codebook::codebook_assignment_stats(&zd, &idxd, k).unwrap();
    same(&cd, &counts, "counts");
    same(&sd, &sums, "sums");
    let state = CodebookEma {
        cluster_size: rand(42, &[k], 0.0, 3.0),
        embedding_avg: rand(43, &[k, d], -1.0, 1.0),
        embedding: rand(44, &[k, d], -1.0, 1.0),
    };
    let dstate = CodebookEma {
        cluster_size: on(&dev, &state.cluster_size),
        embedding_avg: on(&dev, &state.embedding_avg),
        embedding: on(&dev, &state.embedding),
    };
    let want = ops::codebook::codebook_ema_apply(&state, &counts, &sums, 0.99, 1e-5).unwrap();
    let got = ops::codebook::codebook_ema_apply(&dstate, &cd, &sd, 0.99, 1e-5).unwrap();
    same(&got.cluster_size, &want.cluster_size, "cluster_size");
    same(&got.embedding_avg, &want.embedding_avg, "embedding_avg");
    same(&got.embedding, &want.embedding, "embedding");
    unchanged(
        &dstate.cluster_size,
        &state.cluster_size,
        "the cluster_size input",
    );
    unchanged(
        &dstate.embedding_avg,
        &state.embedding_avg,
        "the embedding_avg input",
    );
    unchanged(&dstate.embedding, &state.embedding, "the embedding input");

    let bad = on(&dev, &Tensor::from_u32(vec![0, 1, k as u32], &[3]).unwrap());
    assert!(
        ops::codebook::codebook_assignment_stats(&on(&dev, &rand(45, &[3, d], -1.0, 1.0)), &bad, k)
            .is_err(),
        "index >= codes"
    );
}

fn gram_and_style_loss_with_gradients(dev: CudaDevice) {
    // VGG-like features: 2 images, 64 channels at 16 x 16, and 128 channels at 8 x 8.
    for (seed, shape) in [
        (50, [2, 64, 16, 16]),
        (51, [2, 128, 8, 8]),
        (52, [1, 3, 5, 7]),
    ] {
        let phi = rand(seed, &shape, 0.0, 2.0);
        let c = shape[1];
        let dg = rand(seed + 10, &[shape[0], c, c], -1.0, 1.0);
        let (pd, dgd) = (on(&dev, &phi), on(&dev, &dg));
        same(
            &ops::image_losses::gram(&pd).unwrap(),
            &ops::image_losses::gram(&phi).unwrap(),
            &format!("gram {shape:?}"),
        );
        let want = ops::image_losses::gram_backward(&phi, &dg).unwrap();
        same(
            &ops::image_losses::gram_backward(&pd, &dgd).unwrap(),
            &want,
            &format!("gram backward {shape:?}"),
        );
    }
    // The style and perceptual losses of spec §6.5 through the tape, gradients to both sides.
    let ys = [
        rand(53, &[1, 16, 12, 12], 0.0, 1.0),
        rand(54, &[1, 32, 6, 6], 0.0, 1.0),
    ];
    let xs = [
        rand(55, &[1, 16, 12, 12], 0.0, 1.0),
        rand(56, &[1, 32, 6, 6], 0.0, 1.0),
    ];
    let run = |ys: Vec<Tensor>, xs: Vec<Tensor>| {
        let t = Tape::new();
        let vy: Vec<_> = ys.into_iter().map(|v| t.var(v)).collect();
        let vx: Vec<_> = xs.into_iter().map(|v| t.var(v)).collect();
        let style = al::style_loss(&t, &vy, &vx).unwrap();
        let perc = al::perceptual_loss(&t, &vy, &vx).unwrap();
        let total = al::weighted_sum(&t, &[(&style, 250.0), (&perc, 0.1)]).unwrap();
        let g = t.backward(&total).unwrap();
        let mut out = vec![style.value().clone(), perc.value().clone()];
        out.extend(vy.iter().chain(&vx).map(|v| g.get(v).unwrap().clone()));
        out
    };
    let want = run(ys.to_vec(), xs.to_vec());
    let got = run(
        ys.iter().map(|t| on(&dev, t)).collect(),
        xs.iter().map(|t| on(&dev, t)).collect(),
    );
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        same(a, b, &format!("style / perceptual output {i}"));
    }
}

fn image_gradient_loss_and_its_gradients(dev: CudaDevice) {
    let g = Tensor::scalar(5.0);
    for (seed, shape) in [
        (60, [2, 3, 32, 32]),
        (61, [1, 3, 1, 9]),
        (62, [1, 2, 7, 1]),
        (63, [1, 1, 1, 1]),
    ] {
        let (y, x) = (
            rand(seed, &shape, 0.0, 1.0),
            rand(seed + 10, &shape, 0.0, 1.0),
        );
        // Plateaus: equal neighbours in y and equal gradient magnitudes of y and x, where
        // sign(0) = 0 decides the gradient.
        let mut yv = y.to_vec_f32().unwrap();
        let mut xv = x.to_vec_f32().unwrap();
        for i in (0..yv.len()).step_by(7) {
            yv[i] = 0.5;
            if i + 1 < yv.len() {
                yv[i + 1] = 0.5;
                xv[i] = 0.25;
                xv[i + 1] = 0.25;
            }
        }
        let (y, x) = (
            Tensor::from_vec(yv, &shape).unwrap(),
            Tensor::from_vec(xv, &shape).unwrap(),
        );
        let (yd, xd, gd) = (on(&dev, &y), on(&dev, &x), on(&dev, &g));
        let what = format!("image gradient loss {shape:?}");
        same(
            &ops::image_losses::image_grad_loss(&yd, &xd).unwrap(),
            &ops::image_losses::image_grad_loss(&y, &x).unwrap(),
            &what,
        );
        let (wy, wx) = ops::image_losses::image_grad_loss_backward(&y, &x, &g).unwrap();
        let (gy, gx) = ops::image_losses::image_grad_loss_backward(&yd, &xd, &gd).unwrap();
        same(&gy, &wy, &format!("{what}: d/dy"));
        same(&gx, &wx, &format!("{what}: d/dx"));
    }
}

fn attention_backward_head_dim_32(dev: CudaDevice) {
    // The tiny preset's 2 heads of 32 (n_embd 64), 100 tokens (a partial tile), and 8 heads.
    for (seed, shape, heads) in [(70, [2, 100, 64], 2), (74, [1, 64, 256], 8)] {
        let [q, k, v, dout] = [0, 1, 2, 3].map(|i| rand(seed + i, &shape, -1.0, 1.0));
        let (o, lse) = ops::attention::attention_with_lse(&q, &k, &v, heads).unwrap();
        let want = ops::attention::attention_backward(&q, &k, &v, &o, &lse, &dout, heads).unwrap();
        let [qd, kd, vd, dd] = [&q, &k, &v, &dout].map(|t| on(&dev, t));
        let (od, lsed) = ops::attention::attention_with_lse(&qd, &kd, &vd, heads).unwrap();
        let got =
            ops::attention::attention_backward(&qd, &kd, &vd, &od, &lsed, &dd, heads).unwrap();
        same(&got.0, &want.0, &format!("attention dq {shape:?}"));
        same(&got.1, &want.1, &format!("attention dk {shape:?}"));
        same(&got.2, &want.2, &format!("attention dv {shape:?}"));
    }
    // A head dim with no kernel is an Err naming the supported ones.
    let t = on(&dev, &rand(78, &[1, 8, 48], -1.0, 1.0));
    let lse = on(&dev, &Tensor::zeros(&[1, 1, 8]));
    let err = ops::attention::attention_backward(&t, &t, &t, &t, &lse, &t, 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("48") && err.contains("32"), "{err}");
}
