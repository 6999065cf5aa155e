//! Optimisers and schedule (spec §6.0-§6.1): Adam / AdamW against a numpy re-implementation of
//! `torch.optim.Adam` / `AdamW`, fast vs ref, parameter groups, state export/import, the
//! `CosineAnnealingLRWithWarmup` sequence, clipping, EMA and accumulation.
//!
//! Expected numbers from this numpy script (f32 throughout, PyTorch's operation order):
//! ```text
//! import numpy as np, math
//! f = np.float32
//! def lerp(a, b, w):  # torch.lerp in f32
//!     w = f(w)
//!     return (a + w * (b - a)) if abs(w) < 0.5 else (b - (b - a) * (f(1) - w))
//! def adam(params, grads, lrs, betas, eps, wd, decoupled):
//!     p = np.array(params, dtype=f); m = np.zeros_like(p); v = np.zeros_like(p)
//!     for t, (g, lr) in enumerate(zip(grads, lrs), 1):
//!         g = np.array(g, dtype=f)
//!         if decoupled: p = p * f(1 - lr * wd)
//!         elif wd: g = g + f(wd) * p
//!         m = lerp(m, g, 1 - betas[0])
//!         v = v * f(betas[1]); v = v + f(1 - betas[1]) * g * g
//!         bc1 = 1 - betas[0] ** t; bc2 = 1 - betas[1] ** t
//!         denom = np.sqrt(v) / f(math.sqrt(bc2)) + f(eps)
//!         p = p + (f(-(lr / bc1)) * m) / denom
//!     return p, m, v
//! P = [0.5, -1.0, 2.0, 0.0, -0.25]
//! G = [[0.1, -0.2, 0.3, 0.0, 1.5], [0.05, 0.4, -0.3, -0.01, 1.0],
//!      [-0.2, 0.1, 0.2, 0.02, 0.5], [0.3, -0.1, 0.0, 0.5, -1.0]]
//! adam(P, G[:3], [0.0, 1e-3, 2e-3], (0.0, 0.9), 1e-8, 0.0, False)         # codec, lr from 0
//! adam(P, G[:4], [1e-2, 5e-3, 1e-2, 2e-2], (0.9, 0.95), 1e-8, 0.01, True) # AdamW, phase 1b
//! adam(P, G[:2], [1e-2, 1e-2], (0.9, 0.999), 1e-8, 0.1, False)             # Adam with L2
//! # schedule: the official class's loop with base lr 0, warmup 3, T_max 10, warmup_lr 0.3,
//! # min_lr 0.01 (inc = 0.3/3; e <= 3: lr += inc; else max(max_lr * 0.5(1+cos(pi(e-3)/7)), 0.01))
//! ```
// Expected values are pasted from numpy at full precision.
#![allow(clippy::excessive_precision)]
use fdm::cpu::ops::optim::{adam_step_fast, adam_step_ref};
use fdm::optim::{
    clip_grad_norm, Adam, AdamConfig, CosineAnnealingLRWithWarmup, Ema, GradAccumulator,
};
use fdm::params::optim::AdamParams;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};
use fdm::{Result, Tensor};

const P0: [f32; 5] = [0.5, -1.0, 2.0, 0.0, -0.25];
const GRADS: [[f32; 5]; 4] = [
    [0.1, -0.2, 0.3, 0.0, 1.5],
    [0.05, 0.4, -0.3, -0.01, 1.0],
    [-0.2, 0.1, 0.2, 0.02, 0.5],
    [0.3, -0.1, 0.0, 0.5, -1.0],
];

/// Runs `lrs.len()` steps of one optimiser on P0 with GRADS; returns (param, exported state).
fn run(config: AdamConfig, wd: f64, lrs: &[f64]) -> Result<(Vec<f32>, fdm::optim::AdamParamState)> {
    let mut opt = Adam::new(config);
    let g = opt.add_group(wd);
    opt.add_param(g, &[5])?;
    let mut params = [Tensor::from_vec(P0.to_vec(), &[5])?];
    for (lr, grad) in lrs.iter().zip(GRADS) {
        opt.set_lr(*lr);
        opt.step(&mut params, &[Some(Tensor::from_vec(grad.to_vec(), &[5])?)])?;
    }
    let state = opt.export_state()?.remove(0).expect("state after a step");
    Ok((params[0].to_vec_f32()?, state))
}

#[test]
fn adam_matches_torch_reimplementation_codec_cpu() -> Result<()> {
    let (p, s) = run(AdamConfig::adam(0.0, (0.0, 0.9)), 0.0, &[0.0, 1e-3, 2e-3])?;
    let want_p = [
        0.5022918581962585,
        -1.0020079612731934,
        1.999504566192627,
        -0.0015963180921971798,
        -0.25174736976623535,
    ];
    let want_m = [
        -0.20000000298023224,
        0.10000000149011612,
        0.20000000298023224,
        0.019999999552965164,
        0.5,
    ];
    let want_v = [
        0.005034999921917915,
        0.018640000373125076,
        0.01939000003039837,
        4.900000203633681e-05,
        0.29725000262260437,
    ];
    assert_close(&p, &want_p, TOL_CPU_F32, "param");
    assert_close(&s.exp_avg, &want_m, TOL_CPU_F32, "exp_avg");
    assert_close(&s.exp_avg_sq, &want_v, TOL_CPU_F32, "exp_avg_sq");
    assert_eq!(s.step, 3);
    Ok(())
}

#[test]
fn adamw_matches_torch_reimplementation_transformer_cpu() -> Result<()> {
    let (p, s) = run(
        AdamConfig::adamw(0.0, (0.9, 0.95)),
        0.01,
        &[1e-2, 5e-3, 1e-2, 2e-2],
    )?;
    let want_p = [
        0.4801005423069,
        -0.9997738003730774,
        1.9830602407455444,
        -0.010819580405950546,
        -0.28133928775787354,
    ];
    let want_m = [
        0.023340001702308655,
        0.016820000484585762,
        0.015569998882710934,
        0.05099000036716461,
        0.13535000383853912,
    ];
    let want_v = [
        0.006941500119864941,
        0.00990974996238947,
        0.009819438681006432,
        0.012523512355983257,
        0.20345468819141388,
    ];
    assert_close(&p, &want_p, TOL_CPU_F32, "param");
    assert_close(&s.exp_avg, &want_m, TOL_CPU_F32, "exp_avg");
    assert_close(&s.exp_avg_sq, &want_v, TOL_CPU_F32, "exp_avg_sq");
    Ok(())
}

#[test]
fn adam_l2_weight_decay_matches_torch_reimplementation_cpu() -> Result<()> {
    let (p, s) = run(AdamConfig::adam(0.0, (0.9, 0.999)), 0.1, &[1e-2, 1e-2])?;
    let want_p = [
        0.48030805587768555,
        -0.9905429482460022,
        1.9849063158035278,
        0.007441358640789986,
        -0.2696925401687622,
    ];
    let want_m = [
        0.023400001227855682,
        0.003100000321865082,
        0.0348999984562397,
        -0.0010000000474974513,
        0.2301500141620636,
    ];
    assert_close(&p, &want_p, TOL_CPU_F32, "param");
    assert_close(&s.exp_avg, &want_m, TOL_CPU_F32, "exp_avg");
    Ok(())
}

#[test]
fn adam_first_step_at_lr_zero_changes_only_moments_cpu() -> Result<()> {
    let (p, s) = run(AdamConfig::adam(0.0, (0.0, 0.9)), 0.0, &[0.0])?;
    assert_eq!(p, P0.to_vec(), "lr 0 leaves the parameters bit-identical");
    assert_eq!(
        s.exp_avg,
        GRADS[0].to_vec(),
        "beta1 = 0: exp_avg is the gradient"
    );
    Ok(())
}

#[test]
fn adam_fast_matches_ref_cpu() {
    let n = 100_003; // several parallel chunks and a ragged tail
    let p = AdamParams::new(n, 3e-4, (0.9, 0.95), 1e-8, 0.01, true, 7);
    let (mut pa, g, mut ma, mut va) = (
        random_vec(1, n, -1., 1.),
        random_vec(2, n, -1., 1.),
        random_vec(3, n, -0.1, 0.1),
        random_vec(4, n, 0., 0.01),
    );
    let (mut pb, mut mb, mut vb) = (pa.clone(), ma.clone(), va.clone());
    adam_step_ref(&p, &mut pa, &g, &mut ma, &mut va);
    adam_step_fast(&p, &mut pb, &g, &mut mb, &mut vb);
    assert_eq!(
        (pa, ma, va),
        (pb, mb, vb),
        "same element rule, bit-identical"
    );
}

#[test]
fn adam_groups_apply_weight_decay_only_where_asked_cpu() -> Result<()> {
    // Zero gradients: AdamW moves a parameter only through its decoupled decay.
    let mut opt = Adam::new(AdamConfig::adamw(0.1, (0.9, 0.95)));
    let (decay, no_decay) = (opt.add_group(0.01), opt.add_group(0.0));
    opt.add_param(decay, &[2])?;
    opt.add_param(no_decay, &[2])?;
    let mut params = [
        Tensor::from_vec(vec![1., -2.], &[2])?,
        Tensor::from_vec(vec![1., -2.], &[2])?,
    ];
    let zero = Some(Tensor::zeros(&[2]));
    opt.step(&mut params, &[zero.clone(), zero])?;
    assert_close(
        &params[0].to_vec_f32()?,
        &[0.999, -1.998],
        TOL_CPU_F32,
        "decayed group",
    );
    assert_eq!(
        params[1].to_vec_f32()?,
        vec![1., -2.],
        "no-decay group untouched"
    );
    // A parameter without a gradient is skipped and keeps no state.
    opt.step(&mut params, &[Some(Tensor::zeros(&[2])), None])?;
    let st = opt.export_state()?;
    assert_eq!(
        (
            st[0].as_ref().map(|s| s.step),
            st[1].as_ref().map(|s| s.step)
        ),
        (Some(2), Some(1))
    );
    Ok(())
}

#[test]
fn adam_state_export_import_resumes_exactly_cpu() -> Result<()> {
    let make = || -> Result<Adam> {
        let mut o = Adam::new(AdamConfig::adamw(1e-2, (0.9, 0.95)));
        let g = o.add_group(0.01);
        o.add_param(g, &[5])?;
        Ok(o)
    };
    let grad = |k: usize| Some(Tensor::from_vec(GRADS[k].to_vec(), &[5]).unwrap());
    let (mut a, mut pa) = (make()?, [Tensor::from_vec(P0.to_vec(), &[5])?]);
    for k in 0..2 {
        a.step(&mut pa, &[grad(k)])?;
    }
    let (mut b, mut pb) = (make()?, [pa[0].clone()]);
    b.import_state(a.export_state()?)?;
    a.step(&mut pa, &[grad(2)])?;
    b.step(&mut pb, &[grad(2)])?;
    assert_eq!(pa[0].to_vec_f32()?, pb[0].to_vec_f32()?);
    assert_eq!(a.export_state()?, b.export_state()?);
    Ok(())
}

#[test]
fn adam_rejects_mismatched_input_cpu() -> Result<()> {
    let mut opt = Adam::new(AdamConfig::adam(0.1, (0.9, 0.999)));
    let g = opt.add_group(0.0);
    opt.add_param(g, &[3])?;
    let mut params = [Tensor::zeros(&[4])];
    let err = opt
        .step(&mut params, &[Some(Tensor::zeros(&[4]))])
        .unwrap_err()
        .to_string();
    assert!(err.contains("registered as [3]"), "{err}");
    assert!(opt.add_param(5, &[1]).is_err(), "unknown group");
    Ok(())
}

#[test]
fn cosine_schedule_matches_official_sequence_cpu() -> Result<()> {
    let mut s = CosineAnnealingLRWithWarmup::new(0.0, 10, 3, 0.3, 0.01)?;
    assert_eq!(s.lr(), 0.0, "the first optimiser step runs at lr 0");
    let want = [
        0.09999999999999999,
        0.19999999999999998,
        0.3,
        0.39999999999999997,
        0.3801937735804838,
        0.3246979603717467,
        0.24450418679126285,
        0.15549581320873712,
        0.0753020396282533,
        0.019806226419516192,
        0.01,
        0.019806226419516168,
        0.07530203962825326,
        0.15549581320873707,
    ];
    let got: Vec<f64> = (0..want.len()).map(|_| s.step()).collect();
    for (e, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-15, "e = {e}: lr {g}, expected {w}");
    }
    // The peak is warmup_lr * (warmup + 1) / warmup = 0.4 (spec §6.0).
    assert!((got[3] - 0.4).abs() < 1e-15);
    let mut resumed = CosineAnnealingLRWithWarmup::new(0.0, 10, 3, 0.3, 0.01)?;
    let mut again = CosineAnnealingLRWithWarmup::new(0.0, 10, 3, 0.3, 0.01)?;
    (0..5).for_each(|_| {
        again.step();
    });
    resumed.set_state(again.state());
    assert_eq!(resumed.step(), again.step());
    assert!(CosineAnnealingLRWithWarmup::new(0.0, 10, 0, 0.3, 0.0).is_err());
    Ok(())
}

#[test]
fn clip_grad_norm_scales_to_max_norm_cpu() -> Result<()> {
    // Global norm of [3, 4] and [12] is 13; clipping to 6.5 scales by 6.5 / (13 + 1e-6).
    let mut grads = vec![
        Some(Tensor::from_vec(vec![3., 4.], &[2])?),
        None,
        Some(Tensor::from_vec(vec![12.], &[1])?),
    ];
    let norm = clip_grad_norm(&mut grads, 6.5)?;
    assert_eq!(norm, 13.0);
    let c = 6.5f32 / (13.0 + 1e-6);
    assert_close(
        &grads[0].as_ref().unwrap().to_vec_f32()?,
        &[3. * c, 4. * c],
        TOL_CPU_F32,
        "clipped",
    );
    assert_close(
        &grads[2].as_ref().unwrap().to_vec_f32()?,
        &[12. * c],
        TOL_CPU_F32,
        "clipped",
    );
    let norm = clip_grad_norm(&mut grads, 100.0)?;
    assert!(
        (norm - 6.5).abs() < 1e-5,
        "below max_norm: unchanged, norm {norm}"
    );
    Ok(())
}

#[test]
fn ema_and_grad_accumulation_literal_cpu() -> Result<()> {
    // ema = 0.9 * 1 + 0.1 * 3 = 1.2, then 0.9 * 1.2 + 0.1 * 3 = 1.38.
    let mut ema = Ema::new(0.9, &[Tensor::from_vec(vec![1., -1.], &[2])?]);
    let p = [Tensor::from_vec(vec![3., 1.], &[2])?];
    ema.update(&p)?;
    ema.update(&p)?;
    assert_close(
        &ema.averages()[0].to_vec_f32()?,
        &[1.38, -0.62],
        TOL_CPU_F32,
        "ema",
    );
    // Two micro-batches: mean of [1, 2] and [3, 6] is [2, 4]; a None gradient is skipped.
    let mut acc = GradAccumulator::new(2);
    acc.add(&[Some(Tensor::from_vec(vec![1., 2.], &[2])?), None])?;
    acc.add(&[Some(Tensor::from_vec(vec![3., 6.], &[2])?), None])?;
    assert_eq!(acc.micro_batches(), 2);
    let g = acc.finish()?;
    assert_eq!(g[0].as_ref().unwrap().to_vec_f32()?, vec![2., 4.]);
    assert!(g[1].is_none());
    Ok(())
}
