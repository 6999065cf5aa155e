//! `kernels/reduce.cu`, launched by `cuda::ops::reduce`, against the CPU oracles
//! `reduce_ref` / `argreduce_ref` / `reduce_extreme_backward` (cpu/ops/reduce.rs), on the CPU
//! emulator (`emu::*`) and a real GPU (`cuda::*`, skipped without one).
//! Shapes: a full reduction of a 3 x 256 x 256 image (two passes), a sum over the 1024 tokens of
//! a 2 x 1024 x 512 activation, the bias-gradient sum over 2048 rows of 512 columns (two passes
//! with inner > 1), argmax over 512 logits of 2 x 1024 tokens, and odd sizes (reduce 1, inner not
//! a power of two, columns in partial tiles).
//! Tolerance: sums accumulate in f64 on both sides, so the f32 results agree to a rounding and
//! `be.tol()` holds for any length (TOL_CPU_F32 on the emulator, TOL_CUDA_F32 on a GPU). Max,
//! min and every index are compared exactly (bits, NaN and -0.0 included).

mod common;

use common::backend::Backend;
use fdm::cpu::ops::reduce::{argreduce_ref, reduce_extreme_backward, reduce_ref};
use fdm::cuda::ops::reduce::{
    extreme_scatter_launch, reduce_launches, reduce_partial_words, reduce_plan,
};
use fdm::params::reduce::{ArgReduceOp, ArgReduceParams, ReduceOp, ReduceParams};
use fdm::testing::{assert_close, random_vec};

backend_tests!(
    reduce_matches_reference_on_model_and_odd_shapes,
    full_reductions_take_two_passes_and_match,
    max_min_pick_the_first_extreme_with_ties_nan_and_signed_zero,
    argmax_argmin_match_reference_with_forced_ties,
    extreme_backward_routes_gradient_to_first_extreme,
);

const OPS: [ReduceOp; 4] = [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min];

/// (outer, reduce, inner).
const SHAPES: [(usize, usize, usize); 8] = [
    (2, 1024, 512),
    (1, 2048, 512),
    (64, 512, 1),
    (3, 7, 5),
    (5, 1, 3),
    (4, 1000, 3),
    (2, 300, 33),
    (1, 1, 1),
];

/// Runs one reduction on the backend: (values, positions).
fn run_reduce<B: Backend>(be: &B, x: &[f32], p: &ReduceParams) -> (Vec<f32>, Vec<u32>) {
    let n = p.outer as usize * p.inner as usize;
    let xb = be.f32s(x);
    let out = be.f32s(&vec![f32::NAN; n]);
    let idx = be.u32s(&vec![u32::MAX - 1; n]);
    let part = be.u32s(&vec![0; reduce_partial_words(p).max(1)]);
    let pidx = if matches!(p.kind(), ReduceOp::Max | ReduceOp::Min) {
        be.ptr(&idx)
    } else {
        0
    };
    let ppart = if reduce_partial_words(p) > 0 {
        be.ptr(&part)
    } else {
        0
    };
    for l in reduce_launches(be.ptr(&out), pidx, ppart, be.ptr(&xb), p) {
        be.run(&l);
    }
    (be.get_f32(&out), be.get_u32(&idx))
}

fn want(x: &[f32], p: &ReduceParams) -> Vec<f32> {
    let mut out = vec![0.0f32; p.outer as usize * p.inner as usize];
    reduce_ref(p, x, &mut out);
    out
}

/// Position along the reduced dim of the first extreme of each group, from the oracle's
/// backward (the element that receives a gradient of 1).
fn want_positions(x: &[f32], p: &ReduceParams) -> Vec<u32> {
    let (outer, red, inner) = p.dims();
    let mut dx = vec![0.0f32; x.len()];
    reduce_extreme_backward(p, x, &vec![1.0; outer * inner], &mut dx);
    let mut pos = vec![u32::MAX; outer * inner];
    for o in 0..outer {
        for r in 0..red {
            for i in 0..inner {
                if dx[(o * red + r) * inner + i] == 1.0 {
                    pos[o * inner + i] = r as u32;
                }
            }
        }
    }
    pos
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
        assert!(same, "{what}: element {i}: got {g:?}, expected {w:?}");
    }
}

fn check_reduce<B: Backend>(be: &B, x: &[f32], p: &ReduceParams, what: &str) {
    let (got, pos) = run_reduce(be, x, p);
    let what = format!("{what} {} {:?}", p.kind().name(), p.dims());
    match p.kind() {
        ReduceOp::Sum | ReduceOp::Mean => assert_close(&got, &want(x, p), be.tol(), &what),
        ReduceOp::Max | ReduceOp::Min => {
            assert_bits_eq(&got, &want(x, p), &what);
            assert_eq!(pos, want_positions(x, p), "{what}: positions");
        }
    }
}

fn reduce_matches_reference_on_model_and_odd_shapes<B: Backend>(be: &B) {
    for (s, &(outer, red, inner)) in SHAPES.iter().enumerate() {
        let x = random_vec(10 + s as u64, outer * red * inner, -2.0, 3.0);
        for op in OPS {
            check_reduce(be, &x, &ReduceParams::new(op, outer, red, inner), "reduce");
        }
    }
}

fn full_reductions_take_two_passes_and_match<B: Backend>(be: &B) {
    for (s, n) in [3 * 256 * 256, 1_000_003].into_iter().enumerate() {
        let x = random_vec(20 + s as u64, n, -1.0, 1.0);
        for op in OPS {
            let p = ReduceParams::new(op, 1, n, 1);
            assert!(
                reduce_plan(&p).chunks > 1,
                "a full reduction of {n} uses chunks"
            );
            check_reduce(be, &x, &p, "full");
        }
    }
    // The bias-gradient shape also splits its 2048 rows into chunks.
    assert!(reduce_plan(&ReduceParams::new(ReduceOp::Sum, 1, 2048, 512)).chunks > 1);
}

fn max_min_pick_the_first_extreme_with_ties_nan_and_signed_zero<B: Backend>(be: &B) {
    // Values from {-1, -0, +0, 1}: every group has many ties; +-0 compare equal, so the first
    // of them must win bit for bit.
    let pick = [-1.0f32, -0.0, 0.0, 1.0];
    for &(outer, red, inner) in &[(3usize, 5000usize, 1usize), (2, 700, 40), (1, 100_000, 1)] {
        let r = random_vec(30, outer * red * inner, 0.0, 4.0);
        let mut x: Vec<f32> = r.iter().map(|&u| pick[(u as usize).min(3)]).collect();
        // A NaN late in the first group and two NaNs in the last one: the first NaN wins.
        let n = x.len();
        x[n / (outer * 2)] = f32::NAN;
        x[n - 1] = f32::from_bits(0x7fc0_0001);
        x[n - 1 - inner] = f32::from_bits(0x7fc0_0002);
        for op in [ReduceOp::Max, ReduceOp::Min] {
            check_reduce(be, &x, &ReduceParams::new(op, outer, red, inner), "ties");
        }
    }
}

fn argmax_argmin_match_reference_with_forced_ties<B: Backend>(be: &B) {
    // 2 x 1024 tokens of 512 logits; long rows (two passes); ties from rounding to a coarse grid.
    for (s, &(rows, len)) in [(2048usize, 512usize), (3, 100_000), (7, 33)]
        .iter()
        .enumerate()
    {
        let mut x = random_vec(40 + s as u64, rows * len, -4.0, 4.0);
        x.iter_mut().for_each(|v| *v = v.round());
        x[len + 3] = f32::NAN;
        for op in [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin] {
            let ap = ArgReduceParams::new(op, rows, len);
            let mut want = vec![0u32; rows];
            argreduce_ref(&ap, &x, &mut want);
            let rop = if ap.is_argmax() {
                ReduceOp::Max
            } else {
                ReduceOp::Min
            };
            let xb = be.f32s(&x);
            let idx = be.u32s(&vec![u32::MAX - 1; rows]);
            let p = ReduceParams::new(rop, rows, len, 1);
            let part = be.u32s(&vec![0; reduce_partial_words(&p).max(1)]);
            let ppart = if reduce_partial_words(&p) > 0 {
                be.ptr(&part)
            } else {
                0
            };
            for l in reduce_launches(0, be.ptr(&idx), ppart, be.ptr(&xb), &p) {
                be.run(&l);
            }
            assert_eq!(be.get_u32(&idx), want, "{op:?} {rows}x{len}");
        }
    }
}

fn extreme_backward_routes_gradient_to_first_extreme<B: Backend>(be: &B) {
    for (s, &(outer, red, inner)) in [(2usize, 1024usize, 512usize), (3, 7, 5), (4, 9, 1)]
        .iter()
        .enumerate()
    {
        let mut x = random_vec(50 + s as u64, outer * red * inner, -3.0, 3.0);
        x.iter_mut().for_each(|v| *v = (*v * 2.0).round()); // ties
        let g = random_vec(60 + s as u64, outer * inner, -1.0, 1.0);
        for op in [ReduceOp::Max, ReduceOp::Min] {
            let p = ReduceParams::new(op, outer, red, inner);
            let mut want = vec![0.0f32; x.len()];
            reduce_extreme_backward(&p, &x, &g, &mut want);
            let (_, pos) = run_reduce(be, &x, &p);
            let (pb, gb) = (be.u32s(&pos), be.f32s(&g));
            let dx = be.f32s(&vec![f32::NAN; x.len()]);
            be.run(&extreme_scatter_launch(
                be.ptr(&dx),
                be.ptr(&pb),
                be.ptr(&gb),
                &p,
            ));
            assert_bits_eq(
                &be.get_f32(&dx),
                &want,
                &format!("{op:?} backward {:?}", p.dims()),
            );
        }
    }
}
