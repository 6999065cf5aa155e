//! `kernels/attention_backward.cu` (flash-style attention backward, spec §3.2), at head dim 64
//! (the paper model) and 32 (the tiny preset, the `_d32` kernels), launched by its launchers after
//! the forward kernel (`attention_fwd_dim_launch`, which supplies o and lse), against
//! the CPU oracle `attention_backward_ref` (P materialised per head, f64), on the CPU emulator
//! (`emu::*`) and a real GPU (`cuda::*`, skipped without one).
//!
//! Tolerance TOL_CUDA_F32 (1e-4 abs + rel): each gradient is an f32 sum over up to 1024 keys or
//! queries of products built from exp(s - lse), where lse itself is an f32 result of the forward;
//! the oracle sums in f64 from the exact softmax, so the two differ by more than TOL_CPU_F32.

mod common;

use common::backend::Backend;
use fdm::cpu::ops::attention_backward::attention_backward_ref;
use fdm::cuda::ops::attention::{attention_fwd_dim_launch, AttentionParams, HEAD_DIM};
use fdm::cuda::ops::attention_backward::*;
use fdm::dtype::DType;
use fdm::params::attention::AttentionParams as CpuAttentionParams;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    attention_backward_one_tile_two_batches,
    attention_backward_partial_tiles_l100,
    attention_backward_l256_peaked_scores,
    attention_backward_model_heads_8,
    attention_backward_model_length_1024,
    attention_backward_d32_one_tile_and_partial_tiles,
    attention_backward_d32_l256_peaked_scores,
    attention_backward_d32_tiny_preset_length_1024
);

/// Forward then backward on dense [b, l, h*64] inputs (q and k uniform in +-spread), every
/// element of dq, dk, dv checked against the f64 oracle.
fn check<B: Backend>(be: &B, seed: u64, b: usize, l: usize, h: usize, spread: f32) {
    check_dim(be, seed, b, l, h, HEAD_DIM, spread);
}

/// As `check` for [b, l, h*dh] inputs, dh = 64 or 32.
fn check_dim<B: Backend>(be: &B, seed: u64, b: usize, l: usize, h: usize, dh: usize, spread: f32) {
    let n = b * l * h * dh;
    let q = random_vec(seed, n, -spread, spread);
    let k = random_vec(seed + 1, n, -spread, spread);
    let v = random_vec(seed + 2, n, -1.0, 1.0);
    let dout = random_vec(seed + 3, n, -1.0, 1.0);
    let p = AttentionParams::dense_dim(b, l, h, dh);
    let (qb, kb, vb, dob) = (be.f32s(&q), be.f32s(&k), be.f32s(&v), be.f32s(&dout));
    let nan = |len: usize| be.f32s(&vec![f32::NAN; len]);
    let (o, lse, delta) = (nan(n), nan(b * h * l), nan(b * h * l));
    let (dq, dk, dv) = (nan(n), nan(n), nan(n));
    let ptr = |x: &B::Buf| be.ptr(x);
    be.run(&attention_fwd_dim_launch(
        dh,
        ptr(&o),
        ptr(&lse),
        ptr(&qb),
        ptr(&kb),
        ptr(&vb),
        &p,
    ));
    // The order attention_bwd runs them in.
    be.run(&attention_bwd_delta_dim_launch(
        dh,
        ptr(&delta),
        ptr(&o),
        ptr(&dob),
        &p,
    ));
    be.run(&attention_bwd_dkdv_dim_launch(
        dh,
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
    be.run(&attention_bwd_dq_dim_launch(
        dh,
        ptr(&dq),
        ptr(&qb),
        ptr(&kb),
        ptr(&vb),
        ptr(&dob),
        ptr(&lse),
        ptr(&delta),
        &p,
    ));

    let cp = CpuAttentionParams::new(b, l, h, dh);
    let (mut wq, mut wk, mut wv) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    attention_backward_ref(&cp, &q, &k, &v, &dout, &mut wq, &mut wk, &mut wv);
    let what = format!("attention backward b{b} l{l} h{h} dh{dh} spread {spread}");
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

    // Head dim 32: lengths follow it; a head dim without a kernel names the supported ones.
    let n32 = b * l * h * 32;
    let mut args32 = [(DType::F32, n32); 6];
    args32[5] = (DType::F32, b * h * l);
    let p = check_attention_bwd_args_dim(b, l, h, 32, &args32).unwrap();
    assert_eq!(p, AttentionParams::dense_dim(b, l, h, 32));
    let err = check_attention_bwd_args_dim(b, l, h, 64, &args32)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&n.to_string()),
        "32-wide buffers for head dim 64: {err}"
    );
    let err = check_attention_bwd_args_dim(b, l, h, 48, &args32)
        .unwrap_err()
        .to_string();
    assert!(err.contains("head dim 48") && err.contains("32"), "{err}");
}

fn attention_backward_d32_one_tile_and_partial_tiles<B: Backend>(be: &B) {
    check_dim(be, 50, 2, 64, 2, 32, 1.0);
    check_dim(be, 52, 1, 1, 1, 32, 1.0);
    check_dim(be, 54, 2, 100, 3, 32, 1.0);
}

fn attention_backward_d32_l256_peaked_scores<B: Backend>(be: &B) {
    check_dim(be, 60, 1, 256, 2, 32, 3.0);
    check_dim(be, 62, 1, 256, 8, 32, 1.0);
}

fn attention_backward_d32_tiny_preset_length_1024<B: Backend>(be: &B) {
    // The tiny preset: 2 heads of 32 over 1024 tokens (n_embd 64).
    check_dim(be, 70, 1, 1024, 2, 32, 1.0);
}

fn attention_backward_model_length_1024<B: Backend>(be: &B) {
    // The model's 1024 tokens (sums over 16 key / query tiles) with one head: all 8 heads at this
    // length take ~20 s of CPU on the emulator plus the oracle, too slow for every run.
    check(be, 40, 1, 1024, 1, 1.0);
}
