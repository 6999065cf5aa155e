//! `kernels/optim.cu`, launched by `cuda::ops::optim`, against the CPU oracles of
//! cpu/ops/optim.rs and codebook.rs, on the CPU emulator (`emu::*`) and a real GPU (`cuda::*`,
//! skipped without one). Shapes: a 1024 x 512 weight plus odd lengths; the dual codebook of
//! spec §2.3 (1024 codes of 256 dims) with the 2 x 32 x 32 feature rows of a batch of two.
//! The element-wise updates use explicitly rounded operations, so they are compared bit for bit
//! (Adam over several steps, both lerp branches, Adam with L2 decay and AdamW). The f64 sums
//! (sum of squares, codebook statistics, the cluster-size total) are compared within `be.tol()`
//! (or 1e-12 relative in f64 for the sum of squares).

mod common;

use common::backend::Backend;
use fdm::cpu::ops::codebook::{codebook_assignment_stats, codebook_ema_apply};
use fdm::cpu::ops::optim as cpu;
use fdm::cuda::ops::optim as op;
use fdm::params::codebook::{CodebookEmaParams, CodebookParams};
use fdm::params::optim::AdamParams;
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    adam_steps_match_reference_bit_for_bit,
    ema_scale_accumulate_match_reference,
    sq_norm_matches_f64_reference,
    codebook_stats_match_reference,
    codebook_ema_apply_matches_reference,
);

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let bad = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.to_bits() != w.to_bits());
    if let Some(i) = bad {
        panic!(
            "{what}: element {i}: got {:e}, expected {:e}",
            got[i], want[i]
        );
    }
}

const LENS: [usize; 3] = [1024 * 512, 1001, 1];

fn adam_steps_match_reference_bit_for_bit<B: Backend>(be: &B) {
    // (lr, betas, weight decay, decoupled): AdamW as trained, Adam with L2 decay, beta1 = 0.2
    // (the lerp's second branch), plain Adam.
    let configs = [
        (4.5e-4, (0.9, 0.95), 0.01, true),
        (1e-3, (0.9, 0.999), 0.05, false),
        (2e-3, (0.2, 0.9), 0.0, false),
        (1e-4, (0.0, 0.99), 0.1, true),
    ];
    for (s, &n) in LENS.iter().enumerate() {
        for (c, &(lr, betas, wd, decoupled)) in configs.iter().enumerate() {
            let seed = (10 * s + c) as u64;
            let mut param = random_vec(seed, n, -1.0, 1.0);
            let (mut m, mut v) = (vec![0.0f32; n], vec![0.0f32; n]);
            let (pb, mb, vb) = (be.f32s(&param), be.f32s(&m), be.f32s(&v));
            for step in [1u64, 2, 3, 1000] {
                let grad = random_vec(seed + 100 * step, n, -0.1, 0.1);
                let p = AdamParams::new(n, lr, betas, 1e-8, wd, decoupled, step);
                cpu::adam_step_ref(&p, &mut param, &grad, &mut m, &mut v);
                let gb = be.f32s(&grad);
                be.run(&op::adam_step_launch(
                    be.ptr(&pb),
                    be.ptr(&gb),
                    be.ptr(&mb),
                    be.ptr(&vb),
                    &p,
                ));
                let what = format!("adam n {n} config {c} step {step}");
                assert_bits_eq(&be.get_f32(&pb), &param, &format!("{what} param"));
                assert_bits_eq(&be.get_f32(&mb), &m, &format!("{what} exp_avg"));
                assert_bits_eq(&be.get_f32(&vb), &v, &format!("{what} exp_avg_sq"));
            }
        }
    }
}

fn ema_scale_accumulate_match_reference<B: Backend>(be: &B) {
    for (s, &n) in LENS.iter().enumerate() {
        let (mut ema, param) = (
            random_vec(s as u64, n, -1.0, 1.0),
            random_vec(7 + s as u64, n, -1.0, 1.0),
        );
        let (eb, pb) = (be.f32s(&ema), be.f32s(&param));
        be.run(&op::ema_update_launch(be.ptr(&eb), be.ptr(&pb), n, 0.999));
        cpu::ema_update(&mut ema, &param, 0.999);
        assert_bits_eq(&be.get_f32(&eb), &ema, &format!("ema n {n}"));

        be.run(&op::scale_launch(be.ptr(&eb), n, 0.37));
        cpu::scale_in_place(&mut ema, 0.37);
        assert_bits_eq(&be.get_f32(&eb), &ema, &format!("scale n {n}"));

        be.run(&op::accumulate_launch(be.ptr(&eb), be.ptr(&pb), n));
        cpu::accumulate(&mut ema, &param);
        assert_bits_eq(&be.get_f32(&eb), &ema, &format!("accumulate n {n}"));
    }
}

fn sq_norm_matches_f64_reference<B: Backend>(be: &B) {
    for (s, &n) in [3 * 256 * 256 * 2, 1024 * 512, 1001, 1, 0]
        .iter()
        .enumerate()
    {
        let x = random_vec(20 + s as u64, n, -3.0, 3.0);
        let (xb, out) = (be.f32s(&x), be.f32s(&[f32::NAN; 2]));
        let part = be.f32s(&vec![f32::NAN; 2 * op::sq_norm_parts(n)]);
        for l in op::sq_norm_launches(be.ptr(&out), be.ptr(&part), be.ptr(&xb), n) {
            be.run(&l);
        }
        let got = be.get_f32(&out);
        let (got, want) = (got[0] as f64 + got[1] as f64, cpu::sq_norm_ref(&x));
        assert!(
            (got - want).abs() <= 1e-12 * want,
            "sq_norm n {n}: {got} vs {want}"
        );
    }
}

/// Codes for n rows, each drawn from the first `used` codes (the rest stay unassigned).
fn assignments(seed: u64, n: usize, used: usize) -> Vec<u32> {
    let mut r = Rng::new(seed);
    (0..n).map(|_| r.below(used as u64) as u32).collect()
}

fn codebook_stats_match_reference<B: Backend>(be: &B) {
    // (rows, codes, dim): a batch of two 32 x 32 feature maps on the 1024 x 256 codebook; a
    // dim above one pass's 1024 columns; tiny.
    for (s, &(n, k, d)) in [(2048usize, 1024usize, 256usize), (300, 5, 1100), (3, 4, 1)]
        .iter()
        .enumerate()
    {
        let p = CodebookParams {
            n: n as u32,
            codes: k as u32,
            dim: d as u32,
        };
        let z = random_vec(30 + s as u64, n * d, -1.0, 1.0);
        let idx = assignments(40 + s as u64, n, (k - 1).max(1));
        let (mut counts, mut sums) = (vec![0.0; k], vec![0.0; k * d]);
        codebook_assignment_stats(&p, &z, &idx, &mut counts, &mut sums).unwrap();
        let (zb, ib) = (be.f32s(&z), be.u32s(&idx));
        let (cb, sb) = (be.f32s(&vec![f32::NAN; k]), be.f32s(&vec![f32::NAN; k * d]));
        be.run(&op::codebook_stats_launch(
            be.ptr(&cb),
            be.ptr(&sb),
            be.ptr(&zb),
            be.ptr(&ib),
            &p,
        ));
        let what = format!("codebook stats {n} rows, {k} x {d}");
        assert_eq!(be.get_f32(&cb), counts, "{what}: counts");
        assert_close(&be.get_f32(&sb), &sums, be.tol(), &what);
    }
}

fn codebook_ema_apply_matches_reference<B: Backend>(be: &B) {
    for (s, &(k, d)) in [(1024usize, 256usize), (7, 3)].iter().enumerate() {
        let p = CodebookEmaParams::paper(k, d);
        let mut r = Rng::new(50 + s as u64);
        let mut cluster_size: Vec<f32> = (0..k).map(|_| r.uniform_range(0.0, 8.0)).collect();
        let mut avg = random_vec(60 + s as u64, k * d, -2.0, 2.0);
        let mut emb = vec![0.0f32; k * d];
        let counts: Vec<f32> = (0..k).map(|_| r.below(6) as f32).collect();
        let sums = random_vec(70 + s as u64, k * d, -4.0, 4.0);
        let (csb, ab, eb) = (
            be.f32s(&cluster_size),
            be.f32s(&avg),
            be.f32s(&vec![f32::NAN; k * d]),
        );
        let (cb, sb, scratch) = (be.f32s(&counts), be.f32s(&sums), be.f32s(&[f32::NAN; 2]));
        let ptrs = op::CodebookEmaPtrs {
            cluster_size: be.ptr(&csb),
            embedding_avg: be.ptr(&ab),
            embedding: be.ptr(&eb),
            counts: be.ptr(&cb),
            sums: be.ptr(&sb),
            scratch: be.ptr(&scratch),
        };
        for l in op::codebook_ema_launches(&ptrs, &p) {
            be.run(&l);
        }
        codebook_ema_apply(&p, &counts, &sums, &mut cluster_size, &mut avg, &mut emb);
        let what = format!("codebook EMA {k} x {d}");
        assert_bits_eq(
            &be.get_f32(&csb),
            &cluster_size,
            &format!("{what}: cluster_size"),
        );
        assert_bits_eq(&be.get_f32(&ab), &avg, &format!("{what}: embedding_avg"));
        assert_close(
            &be.get_f32(&eb),
            &emb,
            be.tol(),
            &format!("{what}: embedding"),
        );
    }
}
