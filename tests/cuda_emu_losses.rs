//! `kernels/losses.cu`, launched by `cuda::ops::losses`, against the CPU oracles of
//! cpu/ops/losses.rs and cross_entropy.rs, on the CPU emulator (`emu::*`) and a real GPU
//! (`cuda::*`, skipped without one). Shapes: L1/MSE over a batch of two 3 x 256 x 256 images,
//! the discriminator's 30 x 30 patch logits, cross-entropy over 2 x 1024 tokens of 512 logits
//! (the transformer's, spec §3.5) with ignored rows and the weighted form, and odd sizes.
//! Tolerance `be.tol()`: the forward sums are f64 on both sides (f32 only in the per-row
//! log-sum-exp of the cross-entropy, 512 terms), so the results agree to about 1e-6 relative.
//! The backward tests use an output gradient of the size of the denominator so the gradients are
//! of order 1 and the tolerance's absolute part cannot hide an error.

mod common;

use common::backend::Backend;
use fdm::cpu::ops::cross_entropy::{cross_entropy_backward, cross_entropy_ref};
use fdm::cpu::ops::losses as cpu;
use fdm::cuda::ops::losses::{self as lo, LossKind};
use fdm::params::losses::{CrossEntropyParams, CROSS_ENTROPY_NO_IGNORE};
use fdm::rng::Rng;
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    mean_losses_match_reference,
    mean_loss_backwards_match_reference,
    cross_entropy_matches_reference,
    cross_entropy_backward_matches_reference,
    cross_entropy_target_check_finds_first_bad_row,
);

const SIZES: [usize; 4] = [2 * 3 * 256 * 256, 2 * 30 * 30, 7, 1];

/// Inputs (a, b) for a loss kind: probabilities in [0, 1] with exact 0 and 1 (the BCE log
/// floors), 0/1 masks, or plain values.
fn inputs(kind: LossKind, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut a = random_vec(seed, n, -2.0, 2.0);
    let mut b = random_vec(seed + 1, n, -2.0, 2.0);
    match kind {
        LossKind::Bce => {
            a = random_vec(seed, n, 0.0, 1.0);
            b = random_vec(seed + 1, n, 0.0, 1.0);
            a[0] = 0.0;
            if n > 2 {
                a[1] = 1.0;
                b[2] = 1.0;
            }
        }
        LossKind::HoleFraction => a.iter_mut().for_each(|v| *v = (*v > 0.5) as i32 as f32),
        _ => {}
    }
    (a, b)
}

/// (kind, sign, c) of every loss the model uses.
const CASES: [(LossKind, f32, f32); 7] = [
    (LossKind::L1, 0.0, 0.0),
    (LossKind::Mse, 0.0, 0.0),
    (LossKind::Bce, 0.0, 0.0),
    (LossKind::Hinge, -1.0, 0.0),
    (LossKind::Hinge, 1.0, 0.0),
    (LossKind::ScaledMean, 0.0, -1.0),
    (LossKind::HoleFraction, 0.0, 0.0),
];

fn oracle(kind: LossKind, a: &[f32], b: &[f32], sign: f32, c: f32) -> f32 {
    match kind {
        LossKind::L1 => cpu::l1_mean_ref(a, b),
        LossKind::Mse => cpu::mse_mean_ref(a, b),
        LossKind::Bce => cpu::bce_mean_ref(a, b),
        LossKind::Hinge => cpu::hinge_mean_ref(a, sign),
        LossKind::ScaledMean => cpu::mean_scaled_ref(a, c),
        LossKind::HoleFraction => cpu::hole_fraction(a) as f32,
    }
}

fn mean_losses_match_reference<B: Backend>(be: &B) {
    for (s, &n) in SIZES.iter().enumerate() {
        for (k, &(kind, sign, c)) in CASES.iter().enumerate() {
            let (a, b) = inputs(kind, n, (10 * s + k) as u64);
            let (ab, bb) = (be.f32s(&a), be.f32s(&b));
            let pb = if kind.has_pair() { be.ptr(&bb) } else { 0 };
            let out = be.f32s(&[f32::NAN]);
            let part = be.f32s(&vec![f32::NAN; 2 * lo::loss_parts(n)]);
            for l in lo::loss_fwd_launches(
                be.ptr(&out),
                be.ptr(&part),
                be.ptr(&ab),
                pb,
                n,
                kind,
                sign,
                c,
            ) {
                be.run(&l);
            }
            let want = oracle(kind, &a, &b, sign, c);
            assert_close(
                &be.get_f32(&out),
                &[want],
                be.tol(),
                &format!("{kind:?} sign {sign} n {n}"),
            );
        }
    }
}

/// The CPU backward of each loss: (d/da, d/db where there is one).
fn oracle_bwd(
    kind: LossKind,
    a: &[f32],
    b: &[f32],
    sign: f32,
    c: f32,
    g: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = a.len();
    let (mut da, mut db) = (vec![0.0; n], vec![0.0; n]);
    match kind {
        LossKind::L1 => cpu::l1_mean_backward(a, b, g, &mut da, &mut db),
        LossKind::Mse => cpu::mse_mean_backward(a, b, g, &mut da, &mut db),
        LossKind::Bce => cpu::bce_mean_backward(a, b, g, &mut da),
        LossKind::Hinge => cpu::hinge_mean_backward(a, sign, g, &mut da),
        LossKind::ScaledMean => cpu::mean_scaled_backward(n, c, g, &mut da),
        LossKind::HoleFraction => unreachable!("the hole fraction has no backward"),
    }
    (da, db)
}

fn mean_loss_backwards_match_reference<B: Backend>(be: &B) {
    for (s, &n) in SIZES.iter().enumerate() {
        for (k, &(kind, sign, c)) in CASES[..6].iter().enumerate() {
            let (mut a, b) = inputs(kind, n, (100 + 10 * s + k) as u64);
            if kind == LossKind::Bce {
                a[0] = 0.3; // keep p (1 - p) away from its 1e-12 floor: order-1 gradients
                if n > 1 {
                    a[1] = 0.6;
                }
            }
            let g = 0.7 * n as f32;
            let (want_a, want_b) = oracle_bwd(kind, &a, &b, sign, c, g);
            let (ab, bb, gb) = (be.f32s(&a), be.f32s(&b), be.f32s(&[g]));
            let (da, db) = (be.f32s(&vec![f32::NAN; n]), be.f32s(&vec![f32::NAN; n]));
            let pair = matches!(kind, LossKind::L1 | LossKind::Mse);
            let launch = lo::loss_bwd_launch(
                be.ptr(&da),
                if pair { be.ptr(&db) } else { 0 },
                be.ptr(&ab),
                if kind.has_pair() { be.ptr(&bb) } else { 0 },
                be.ptr(&gb),
                n,
                kind,
                sign,
                c,
            );
            be.run(&launch);
            let what = format!("{kind:?} backward sign {sign} n {n}");
            assert_close(&be.get_f32(&da), &want_a, be.tol(), &what);
            if pair {
                assert_close(&be.get_f32(&db), &want_b, be.tol(), &what);
            }
        }
    }
}

/// (rows, classes, ignore index, weighted)
const CE_CASES: [(usize, usize, u32, bool); 6] = [
    (2048, 512, CROSS_ENTROPY_NO_IGNORE, false),
    (2048, 512, -100i32 as u32, false),
    (2048, 512, CROSS_ENTROPY_NO_IGNORE, true),
    (1024, 512, 7, true),
    (7, 33, -100i32 as u32, false),
    (3, 1, CROSS_ENTROPY_NO_IGNORE, false),
];

/// Logits, targets (every 5th row ignored when there is an ignore index), 0/1 weights.
fn ce_inputs(s: usize, rows: usize, classes: usize, ignore: u32) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let logits = random_vec(200 + s as u64, rows * classes, -6.0, 6.0);
    let mut r = Rng::new(300 + s as u64);
    let targets: Vec<u32> = (0..rows)
        .map(|i| {
            if ignore != CROSS_ENTROPY_NO_IGNORE && i % 5 == 2 {
                ignore
            } else {
                r.below(classes as u64) as u32
            }
        })
        .collect();
    let weights: Vec<f32> = (0..rows).map(|_| r.bernoulli(0.4) as i32 as f32).collect();
    (logits, targets, weights)
}

fn ce_params(rows: usize, classes: usize, ignore: u32) -> CrossEntropyParams {
    CrossEntropyParams {
        rows: rows as u32,
        classes: classes as u32,
        ignore_index: ignore,
    }
}

fn cross_entropy_matches_reference<B: Backend>(be: &B) {
    for (s, &(rows, classes, ignore, weighted)) in CE_CASES.iter().enumerate() {
        let p = ce_params(rows, classes, ignore);
        let (logits, targets, weights) = ce_inputs(s, rows, classes, ignore);
        let w = weighted.then_some(weights.as_slice());
        let want = cross_entropy_ref(&p, &logits, &targets, w).unwrap();
        let (lb, tb, wb) = (be.f32s(&logits), be.u32s(&targets), be.f32s(&weights));
        let pw = if weighted { be.ptr(&wb) } else { 0 };
        let (row_ce, loss, den) = (
            be.f32s(&vec![f32::NAN; rows]),
            be.f32s(&[f32::NAN]),
            be.f32s(&[f32::NAN; 2]),
        );
        be.run(&lo::ce_rows_launch(
            be.ptr(&row_ce),
            be.ptr(&lb),
            be.ptr(&tb),
            &p,
        ));
        be.run(&lo::ce_finish_launch(
            be.ptr(&loss),
            be.ptr(&den),
            be.ptr(&row_ce),
            be.ptr(&tb),
            pw,
            &p,
        ));
        let what = format!("cross-entropy {rows}x{classes} ignore {ignore} weighted {weighted}");
        assert_close(&be.get_f32(&loss), &[want], be.tol(), &what);
    }
    // No live row: the plain mean is 0/0 = NaN, the weighted one 0/(0 + 1e-18) = 0.
    let p = ce_params(4, 3, 2);
    let (logits, targets, weights) = (random_vec(9, 12, -1.0, 1.0), vec![2u32; 4], vec![0.0f32; 4]);
    for weighted in [false, true] {
        let w = weighted.then_some(weights.as_slice());
        let want = cross_entropy_ref(&p, &logits, &targets, w).unwrap();
        let (lb, tb, wb) = (be.f32s(&logits), be.u32s(&targets), be.f32s(&weights));
        let (row_ce, loss, den) = (be.f32s(&[1.0; 4]), be.f32s(&[1.0]), be.f32s(&[1.0; 2]));
        be.run(&lo::ce_rows_launch(
            be.ptr(&row_ce),
            be.ptr(&lb),
            be.ptr(&tb),
            &p,
        ));
        let pw = if weighted { be.ptr(&wb) } else { 0 };
        be.run(&lo::ce_finish_launch(
            be.ptr(&loss),
            be.ptr(&den),
            be.ptr(&row_ce),
            be.ptr(&tb),
            pw,
            &p,
        ));
        assert_close(
            &be.get_f32(&loss),
            &[want],
            be.tol(),
            &format!("all ignored, weighted {weighted}"),
        );
    }
}

fn cross_entropy_backward_matches_reference<B: Backend>(be: &B) {
    for (s, &(rows, classes, ignore, weighted)) in CE_CASES.iter().enumerate() {
        let p = ce_params(rows, classes, ignore);
        let (logits, targets, weights) = ce_inputs(s, rows, classes, ignore);
        let w = weighted.then_some(weights.as_slice());
        let g = rows as f32 * 0.6;
        let mut want = vec![0.0; rows * classes];
        cross_entropy_backward(&p, &logits, &targets, w, g, &mut want).unwrap();
        let (lb, tb, wb, gb) = (
            be.f32s(&logits),
            be.u32s(&targets),
            be.f32s(&weights),
            be.f32s(&[g]),
        );
        let pw = if weighted { be.ptr(&wb) } else { 0 };
        let (den, d) = (
            be.f32s(&[f32::NAN; 2]),
            be.f32s(&vec![f32::NAN; rows * classes]),
        );
        be.run(&lo::ce_finish_launch(
            0,
            be.ptr(&den),
            0,
            be.ptr(&tb),
            pw,
            &p,
        ));
        be.run(&lo::ce_bwd_launch(
            be.ptr(&d),
            be.ptr(&lb),
            be.ptr(&tb),
            pw,
            be.ptr(&gb),
            be.ptr(&den),
            &p,
        ));
        let what =
            format!("cross-entropy backward {rows}x{classes} ignore {ignore} weighted {weighted}");
        assert_close(&be.get_f32(&d), &want, be.tol(), &what);
    }
}

fn cross_entropy_target_check_finds_first_bad_row<B: Backend>(be: &B) {
    let p = ce_params(3000, 512, -100i32 as u32);
    let (_, mut targets, _) = ce_inputs(0, 3000, 512, p.ignore_index);
    let check = |t: &[u32]| {
        let (tb, bad) = (be.u32s(t), be.u32s(&[u32::MAX]));
        be.run(&lo::ce_target_check_launch(be.ptr(&bad), be.ptr(&tb), &p));
        be.get_u32(&bad)[0]
    };
    assert_eq!(
        check(&targets),
        u32::MAX,
        "valid targets and ignored rows pass"
    );
    targets[2500] = 512;
    targets[901] = 600;
    assert_eq!(check(&targets), 901);
}
