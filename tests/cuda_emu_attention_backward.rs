//! `kernels/attention_backward.cu` (flash-style attention backward, spec §3.2), launched by its
//! launchers after the forward kernel (`attention_fwd_launch`, which supplies o and lse), against
//! the CPU oracle `attention_backward_ref` (P materialised per head, f64), on the CPU emulator
//! (`emu::*`) and a real GPU (`cuda::*`, skipped without one).
//!
//! Tolerance TOL_CUDA_F32 (1e-4 abs + rel): each gradient is an f32 sum over up to 1024 keys or
//! queries of products built from exp(s - lse), where lse itself is an f32 result of the forward;
//! the oracle sums in f64 from the exact softmax, so the two differ by more than TOL_CPU_F32.

mod common;

use common::backend::Backend;
use fdm::cpu::ops::attention_backward::attention_backward_ref;
use fdm::cuda::ops::attention::{attention_fwd_launch, AttentionParams, HEAD_DIM};
use fdm::cuda::ops::attention_backward::*;
use fdm::dtype::DType;
use fdm::params::attention::AttentionParams as CpuAttentionParams;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    attention_backward_one_tile_two_batches,
    attention_backward_partial_tiles_l100,
    attention_backward_l256_peaked_scores,
    attention_backward_model_heads_8,
    attention_backward_model_length_1024
);

/// Forward then backward on dense [b, l, h*64] inputs (q and k uniform in +-spread), every
/// element of dq, dk, dv checked against the f64 oracle.
fn check<B: Backend>(be: &B, seed: u64, b: usize, l: usize, h: usize, spread: f32) {
    let n = b * l * h * HEAD_DIM;
    let q = random_vec(seed, n, -spread, spread);
    let k = random_vec(seed + 1, n, -spread, spread);
    let v = random_vec(seed + 2, n, -1.0, 1.0);
    let dout = random_vec(seed + 3, n, -1.0, 1.0);
    let p = AttentionParams::dense(b, l, h);
    let (qb, kb, vb, dob) = (be.f32s(&q), be.f32s(&k), be.f32s(&v), be.f32s(&dout));
    let nan = |len: usize| be.f32s(&vec![f32::NAN; len]);
    let (o, lse, delta) = (nan(n), nan(b * h * l), nan(b * h * l));
    let (dq, dk, dv) = (nan(n), nan(n), nan(n));
    let ptr = |x: &B::Buf| be.ptr(x);
    be.run(&attention_fwd_launch(
        ptr(&o),
        ptr(&lse),
        ptr(&qb),
        ptr(&kb),
        ptr(&vb),
        &p,
    ));
    // The order attention_bwd runs them in.
    be.run(&attention_bwd_delta_launch(
        ptr(&delta),
        ptr(&o),
        ptr(&dob),
        &p,
    ));
    be.run(&attention_bwd_dkdv_launch(
        ptr(&dk),
        ptr(&dv),
        ptr(&qb),
        ptr(&kb),
        ptr(&vb),
        ptr(&dob),
        ptr(&lse),
        ptr(&delta),
        &p,
    ));
    be.run(&attention_bwd_dq_launch(
        ptr(&dq),
        ptr(&qb),
        ptr(&kb),
        ptr(&vb),
        ptr(&dob),
        ptr(&lse),
        ptr(&delta),
        &p,
    ));

    let cp = CpuAttentionParams::new(b, l, h, HEAD_DIM);
    let (mut wq, mut wk, mut wv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    attention_backward_ref(&cp, &q, &k, &v, &dout, &mut wq, &mut wk, &mut wv);
    let what = format!("attention backward b{b} l{l} h{h} spread {spread}");
    assert_close(&be.get_f32(&dv), &wv, TOL_CUDA_F32, &format!("{what}: dv"));
    assert_close(&be.get_f32(&dk), &wk, TOL_CUDA_F32, &format!("{what}: dk"));
    assert_close(&be.get_f32(&dq), &wq, TOL_CUDA_F32, &format!("{what}: dq"));
}

fn attention_backward_one_tile_two_batches<B: Backend>(be: &B) {
    check(be, 1, 2, 64, 2, 1.0);
    check(be, 5, 1, 1, 1, 1.0);
}

fn attention_backward_partial_tiles_l100<B: Backend>(be: &B) {
    // 100 = 64 + 36 keys/queries: a partial tile in both kernels and partial 16/32-row slices.
    check(be, 10, 1, 100, 3, 1.0);
    check(be, 14, 2, 100, 2, 1.0);
}

fn attention_backward_l256_peaked_scores<B: Backend>(be: &B) {
    // Spread 3: scores up to ~70, so the softmax is peaked and p_ij spans many orders of magnitude.
    check(be, 20, 1, 256, 2, 3.0);
    check(be, 24, 1, 256, 4, 1.0);
}

fn attention_backward_model_heads_8<B: Backend>(be: &B) {
    // The model's 8 heads x 64 (spec §3.2), at 256 tokens instead of 1024 for the emulator.
    check(be, 30, 1, 256, 8, 1.0);
}

#[test]
fn attention_backward_arg_checks_name_the_argument() {
    let (b, l, h) = (2, 10, 3);
    let n = b * l * h * HEAD_DIM;
    let mut args = [(DType::F32, n); 6];
    args[5] = (DType::F32, b * h * l);
    let p = check_attention_bwd_args(b, l, h, &args).unwrap();
    assert_eq!(p, AttentionParams::dense(b, l, h));

    let mut short = args;
    short[4] = (DType::F32, n - 1);
    let err = check_attention_bwd_args(b, l, h, &short)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dout") && err.contains(&n.to_string()),
        "{err}"
    );

    let mut wrong_type = args;
    wrong_type[5] = (DType::U32, b * h * l);
    let err = check_attention_bwd_args(b, l, h, &wrong_type)
        .unwrap_err()
        .to_string();
    assert!(err.contains("lse") && err.contains("f32"), "{err}");

    let err = check_attention_bwd_args(0, l, h, &args)
        .unwrap_err()
        .to_string();
    assert!(err.contains("batch 0"), "{err}");
}

fn attention_backward_model_length_1024<B: Backend>(be: &B) {
    // The model's 1024 tokens (sums over 16 key / query tiles) with one head: all 8 heads at this
    // length take ~20 s of CPU on the emulator plus the oracle, too slow for every run.
    check(be, 40, 1, 1024, 1, 1.0);
}
