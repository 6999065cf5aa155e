//! `kernels/attention_tc.cu` (attention forward on bf16 tensor cores, spec §3.2), launched by its
//! launcher (the one-pass kernel, the two-key-group kernel, the 8-warp kernel of 128 queries per
//! block and the split keys with their merge; each message names the `TcPlan`), against the f64
//! reference of the
//! bf16-rounded q, k, v, on the CPU emulator (`emu::*`,
//! where the mma instruction is its emulated twin) and a real GPU (`cuda::*`, skipped without one).
//!
//! Tolerance: the kernel also rounds each probability p_j to bf16 for the P V product (relative
//! error at most 2^-9 each) while it normalises by the unrounded sum, so an output differs from the
//! reference by at most 2^-9 * max |v| = 2^-9 here (|v| <= 1), plus the f32 rounding of
//! TOL_CUDA_F32; the log-sum-exp uses no rounded probability and keeps TOL_CUDA_F32.
//! The `_ob` entries (o written in bf16 for a bf16-weight Linear): exactly the f32 entry's o
//! rounded to nearest even, and the same log-sum-exp.

mod common;

use common::backend::Backend;
use common::reference::{attention_row_ref, fuse_qkv_rows};
use fdm::cuda::ops::attention::{attention_fwd_bf16_out_launch, attention_fwd_kernel_launch, attention_tc_split_launches, tc_splits, AttentionKernel, AttentionParams, TcPlan};
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    tc_attention_matches_the_rounded_reference_with_partial_tiles,
    tc_attention_at_the_model_shape,
    tc_attention_head_dim_32_at_the_tiny_shape,
    tc_attention_reads_q_k_v_from_one_fused_projection,
    tc_attention_bf16_output_is_the_f32_output_rounded
);

/// Worst-case effect of the bf16 probabilities on an output with |v| <= 1 (see the header).
const TOL_TC_OUT: (f32, f32) = (1.0 / 512.0 + TOL_CUDA_F32.0, TOL_CUDA_F32.1);

/// `x` rounded to bf16 (nearest even) and widened back: what the kernel stages.
fn bf16_rounded(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| half::bf16::from_f32(v).to_f32()).collect()
}

/// Runs the tensor-core forward on q, k, v at `qkv` laid out as `p` says, covering the keys as
/// `plan` says, the log-sum-exp into `lse` unless it is 0; returns the dense o.
fn run_tc<B: Backend>(be: &B, p: &AttentionParams, dh: usize, plan: TcPlan, qkv: [u64; 3], lse: u64) -> Vec<f32> {
    let n = (p.batch * p.len * p.heads) as usize * dh;
    let o = be.f32s(&vec![f32::NAN; n]);
    let whole = match plan {
        TcPlan::OnePass => Some(AttentionKernel::TensorCoreBf16),
        TcPlan::KeyGroups => Some(AttentionKernel::TensorCoreBf16KeyGroups),
        TcPlan::Wide => Some(AttentionKernel::TensorCoreBf16Wide),
        TcPlan::Split(_) => None,
        TcPlan::Bf16Inputs => panic!("the bf16-input kernel takes bf16 inputs: tests/cuda_emu_attention_fa.rs"),
    };
    if let Some(which) = whole {
        be.run(&attention_fwd_kernel_launch(which, dh, be.ptr(&o), lse, qkv[0], qkv[1], qkv[2], p));
    } else {
        let TcPlan::Split(splits) = plan else { unreachable!() };
        let rows = (p.batch * p.heads * p.len) as usize;
        let (o_part, lse_part) = (be.f32s(&vec![f32::NAN; splits * n]), be.f32s(&vec![f32::NAN; splits * rows]));
        let out = [be.ptr(&o), lse, be.ptr(&o_part), be.ptr(&lse_part)];
        for launch in attention_tc_split_launches(dh, splits, out, qkv, p) {
            be.run(&launch);
        }
    }
    be.get_f32(&o)
}

/// Runs the kernel of `plan` on dense [b, l, h * dh] inputs and checks the query rows `rows` of
/// every (b, h).
#[allow(clippy::too_many_arguments)]
fn check_plan<B: Backend>(be: &B, seed: u64, (b, l, h, dh): (usize, usize, usize, usize), plan: TcPlan, spread: f32, rows: &[usize]) {
    let n = b * l * h * dh;
    let q = random_vec(seed, n, -spread, spread);
    let k = random_vec(seed + 1, n, -spread, spread);
    let v = random_vec(seed + 2, n, -1.0, 1.0);
    let (qb, kb, vb) = (be.f32s(&q), be.f32s(&k), be.f32s(&v));
    let p = AttentionParams::dense_dim(b, l, h, dh);
    let qkv = [be.ptr(&qb), be.ptr(&kb), be.ptr(&vb)];
    // Once with the log-sum-exp and once without (a null lse, as inference passes): same o.
    let run = |with_lse: bool| {
        let lse = be.f32s(&vec![f32::NAN; b * h * l]);
        let o = run_tc(be, &p, dh, plan, qkv, if with_lse { be.ptr(&lse) } else { 0 });
        (o, be.get_f32(&lse))
    };
    let (o, lse) = run(true);
    let (o_no_lse, _) = run(false);
    assert_eq!(o.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), o_no_lse.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), "o must not depend on whether lse is written ({plan:?})");
    let (qr, kr, vr) = (bf16_rounded(&q), bf16_rounded(&k), bf16_rounded(&v));
    for bi in 0..b {
        for hi in 0..h {
            for &qi in rows {
                let (want, want_lse) = attention_row_ref(&qr, &kr, &vr, l, h, dh, bi, hi, qi);
                let start = (bi * l + qi) * h * dh + hi * dh;
                let what = format!("tensor-core attention, {plan:?}: b{bi} h{hi} query {qi} of {l} (head dim {dh})");
                assert_close(&o[start..start + dh], &want, TOL_TC_OUT, &what);
                assert_close(&[lse[(bi * h + hi) * l + qi]], &[want_lse], TOL_CUDA_F32, &format!("{what} lse"));
            }
        }
    }
}

/// The plans with one kernel over all keys, and the keys split in `splits` ranges where there
/// are that many 64-key tiles of `len`.
fn plans(len: usize, splits: &[usize]) -> Vec<TcPlan> {
    let split = splits.iter().filter(|&&s| s <= len.div_ceil(64)).map(|&s| TcPlan::Split(s));
    [TcPlan::OnePass, TcPlan::KeyGroups, TcPlan::Wide].into_iter().chain(split).collect()
}

/// `check_plan` with every whole-sequence kernel and, where there are two 64-key tiles, the
/// keys split in 2.
fn check<B: Backend>(be: &B, seed: u64, shape: (usize, usize, usize, usize), spread: f32, rows: &[usize]) {
    for plan in plans(shape.1, &[2]) {
        check_plan(be, seed, shape, plan, spread, rows);
    }
}

fn tc_attention_matches_the_rounded_reference_with_partial_tiles<B: Backend>(be: &B) {
    // 130 = two full 64-tiles + 2: partial query and key tiles (a warp whose rows are all past the
    // sequence, keys masked inside a tile). Spread 3 gives scores up to ~70: the online rescaling.
    let all: Vec<usize> = (0..130).collect();
    check(be, 1, (2, 130, 3, 64), 3.0, &all);
    check(be, 4, (1, 1, 1, 64), 1.0, &[0]);
    check_plan(be, 5, (1, 17, 2, 32), TcPlan::OnePass, 2.0, &(0..17).collect::<Vec<_>>());
    // Two key groups where group 1 has no tile at all (one tile), and an odd tile count (3).
    check_plan(be, 5, (1, 17, 2, 32), TcPlan::KeyGroups, 2.0, &(0..17).collect::<Vec<_>>());
    check_plan(be, 6, (2, 190, 2, 64), TcPlan::KeyGroups, 3.0, &[0, 63, 64, 128, 189]);
    // 128 queries per block: warps whose rows are all past the sequence (17), a second block
    // whose upper half is past it (190), at both head dims.
    check_plan(be, 5, (1, 17, 2, 32), TcPlan::Wide, 2.0, &(0..17).collect::<Vec<_>>());
    check_plan(be, 6, (2, 190, 2, 64), TcPlan::Wide, 3.0, &[0, 63, 64, 127, 128, 189]);
    check_plan(be, 9, (1, 300, 2, 32), TcPlan::Wide, 3.0, &[0, 100, 127, 128, 255, 256, 299]);
    // Uneven ranges: 3 tiles in 3, 5 tiles (the last partial) in 3 and in 4.
    check_plan(be, 6, (2, 190, 2, 64), TcPlan::Split(3), 3.0, &[0, 63, 64, 128, 189]);
    for splits in [3, 4] {
        check_plan(be, 9, (1, 300, 2, 32), TcPlan::Split(splits), 3.0, &[0, 100, 299]);
    }
}

#[test]
fn key_splits_fill_a_large_gpu_and_stay_within_the_tiles() {
    assert_eq!(tc_splits(1, 1024, 8), 1, "paper model, one sample: 128 blocks");
    assert_eq!(tc_splits(4, 1024, 8), 1, "four samples: 512 blocks");
    assert_eq!(tc_splits(1, 1024, 2), 4, "tiny preset: 32 blocks, at most 4 ranges");
    assert_eq!(tc_splits(1, 1024, 1), 4, "at most 4 ranges");
    assert_eq!(tc_splits(1, 320, 4), 4, "20 blocks");
    assert_eq!(tc_splits(1, 100, 1), 2, "never more ranges than 64-key tiles");
    assert_eq!(tc_splits(1, 1, 1), 1);
    // The default plan of a shape: one pass where one range suffices, else the split.
    assert_eq!(TcPlan::for_shape(1, 1024, 8, 64), TcPlan::OnePass);
    assert_eq!(TcPlan::for_shape(1, 1024, 2, 32), TcPlan::Split(4));
    // With the wide kernel allowed: only where its grid of 128-query blocks has 128 blocks.
    assert_eq!(TcPlan::choose(1, 1024, 8, true), TcPlan::OnePass, "64 wide blocks: too few");
    assert_eq!(TcPlan::choose(2, 1024, 8, true), TcPlan::Wide);
    assert_eq!(TcPlan::choose(4, 1024, 8, true), TcPlan::Wide);
    assert_eq!(TcPlan::choose(4, 1024, 8, false), TcPlan::OnePass);
    assert_eq!(TcPlan::choose(1, 1024, 2, true), TcPlan::Split(4));
}

/// The wide kernel's grid: 128 queries per block.
#[test]
fn wide_kernel_grid_has_128_queries_per_block() {
    let p = AttentionParams::dense_dim(4, 1000, 8, 64);
    let launch = attention_fwd_kernel_launch(AttentionKernel::TensorCoreBf16Wide, 64, 0, 0, 0, 0, 0, &p);
    assert_eq!((launch.cfg.grid, launch.cfg.block.0), ((8, 8, 4), 256));
    let launch = attention_fwd_kernel_launch(AttentionKernel::TensorCoreBf16, 64, 0, 0, 0, 0, 0, &p);
    assert_eq!((launch.cfg.grid, launch.cfg.block.0), ((16, 8, 4), 128));
}

fn tc_attention_at_the_model_shape<B: Backend>(be: &B) {
    // 8 heads x 1024 tokens x 64, the paper model's shape; rows covering all 16 query tiles.
    let rows: Vec<usize> = (0..1024).step_by(61).chain([1023]).collect();
    check(be, 7, (1, 1024, 8, 64), 1.0, &rows);
}

fn tc_attention_head_dim_32_at_the_tiny_shape<B: Backend>(be: &B) {
    // The tiny preset: 2 heads of 32 over 1024 tokens, and a partial key tile (1000 = 15 * 64 + 40).
    check(be, 7, (1, 1024, 2, 32), 2.0, &[0, 1, 63, 64, 511, 1023]);
    check(be, 8, (2, 1000, 2, 32), 3.0, &[0, 39, 999]);
}

/// q, k and v as the column blocks of one [b, l, 3 * h * dh] buffer (the fused projection of bf16
/// inference, `AttentionParams::packed_qkv`): the same o, bit for bit, as from dense q, k, v, with
/// the keys in one pass, in two key groups and split.
fn tc_attention_reads_q_k_v_from_one_fused_projection<B: Backend>(be: &B) {
    for (seed, (b, l, h, dh)) in [(11, (2, 130, 3, 64)), (12, (1, 1024, 2, 32))] {
        let (w, rows) = (h * dh, b * l);
        let [q, k, v] = [0, 1, 2].map(|i| random_vec(seed + i, rows * w, -2.0, 2.0));
        let fused = fuse_qkv_rows(&q, &k, &v, rows, w);
        let (qb, kb, vb, fb) = (be.f32s(&q), be.f32s(&k), be.f32s(&v), be.f32s(&fused));
        let base = be.ptr(&fb);
        let fused_ptrs = [base, base + 4 * w as u64, base + 8 * w as u64];
        for plan in plans(l, &[2, 4]) {
            let dense = run_tc(be, &AttentionParams::dense_dim(b, l, h, dh), dh, plan, [be.ptr(&qb), be.ptr(&kb), be.ptr(&vb)], 0);
            let packed = run_tc(be, &AttentionParams::packed_qkv(b, l, h, dh), dh, plan, fused_ptrs, 0);
            assert!(dense.iter().all(|x| x.is_finite()), "dense o written everywhere ({plan:?})");
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&packed), bits(&dense), "fused q, k, v of {b} x {l} x {h} x {dh}, {plan:?}");
        }
    }
}

/// The `_ob` entries of the one-pass and wide kernels (o in bf16 for the bf16 Linear after the
/// attention): the f32 entry's o rounded as the host's `half` rounds it, the same log-sum-exp,
/// on the fused projection the model passes, with partial tiles, at both head dims. The other
/// kernels have no such entry.
fn tc_attention_bf16_output_is_the_f32_output_rounded<B: Backend>(be: &B) {
    for (seed, (b, l, h, dh)) in [(21, (2, 130, 3, 64)), (22, (1, 300, 2, 32))] {
        let (w, rows) = (h * dh, b * l);
        let [q, k, v] = [0, 1, 2].map(|i| random_vec(seed + i, rows * w, -2.0, 2.0));
        let fused = be.f32s(&fuse_qkv_rows(&q, &k, &v, rows, w));
        let base = be.ptr(&fused);
        let qkv = [base, base + 4 * w as u64, base + 8 * w as u64];
        let p = AttentionParams::packed_qkv(b, l, h, dh);
        for which in [AttentionKernel::TensorCoreBf16, AttentionKernel::TensorCoreBf16Wide] {
            let what = format!("{which:?} with a bf16 o, {b} x {l} x {h} x {dh}");
            let [lse, lse_b] = [0, 1].map(|_| be.f32s(&vec![f32::NAN; b * h * l]));
            let o = be.f32s(&vec![f32::NAN; rows * w]);
            be.run(&attention_fwd_kernel_launch(which, dh, be.ptr(&o), be.ptr(&lse), qkv[0], qkv[1], qkv[2], &p));
            let ob = be.u32s(&vec![u32::MAX; rows * w / 2]);
            be.run(&attention_fwd_bf16_out_launch(which, dh, be.ptr(&ob), be.ptr(&lse_b), qkv, &p).expect("a bf16-output entry"));
            let got: Vec<u16> = be.get_u32(&ob).iter().flat_map(|x| [*x as u16, (x >> 16) as u16]).collect();
            let want: Vec<u16> = be.get_f32(&o).iter().map(|x| half::bf16::from_f32(*x).to_bits()).collect();
            assert_eq!(got, want, "{what}: o");
            let bits = |x: Vec<f32>| x.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(be.get_f32(&lse_b)), bits(be.get_f32(&lse)), "{what}: lse");
        }
        for which in [AttentionKernel::TensorCoreBf16KeyGroups, AttentionKernel::TensorCoreBf16Split(2), AttentionKernel::SplitKeys] {
            assert!(attention_fwd_bf16_out_launch(which, dh, 0, 0, qkv, &p).is_none(), "{which:?} has no bf16-output entry");
        }
    }
}
