//! `kernels/softmax.cu` and `kernels/layernorm.cu` (row reductions over the last dim with warp
//! shuffles and shared memory), launched by their launchers, against f64 reference loops, on the
//! CPU emulator (`emu::*`) and a real GPU (`cuda::*`, skipped without one). Shapes include the
//! model's (512 and 1024 columns, spec §3) and awkward ones (1 column, columns not a multiple of
//! 32, rows not a multiple of the block).

mod common;

use common::backend::Backend;
use common::reference::{layernorm_bwd_ref, layernorm_ref, softmax_bwd_ref, softmax_ref};
use fdm::cuda::ops::layernorm::{self as ln, LnPtrs};
use fdm::cuda::ops::softmax;
use fdm::testing::{assert_close, random_vec};
use fdm::DType;

backend_tests!(
    softmax_forward_matches_reference,
    softmax_handles_masked_logits,
    softmax_backward_matches_reference,
    layernorm_forward_matches_reference,
    layernorm_without_affine_or_stats,
    layernorm_backward_matches_reference,
    add_layernorm_equals_the_add_then_the_layernorm_kernel,
);

const SHAPES: [(usize, usize); 6] = [(3, 1), (5, 33), (64, 512), (9, 1024), (2, 1000), (4, 4096)];

fn softmax_forward_matches_reference<B: Backend>(be: &B) {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        // Logits up to +-40: exp would overflow f32 without the max subtraction.
        let x = random_vec(100 + i as u64, rows * cols, -40.0, 40.0);
        let (xb, y) = (be.f32s(&x), be.f32s(&vec![f32::NAN; x.len()]));
        be.run(&softmax::softmax_fwd_launch(
            be.ptr(&y),
            be.ptr(&xb),
            rows,
            cols,
        ));
        assert_close(
            &be.get_f32(&y),
            &softmax_ref(&x, rows, cols),
            be.tol(),
            &format!("softmax {rows}x{cols}"),
        );
    }
}

fn softmax_handles_masked_logits<B: Backend>(be: &B) {
    // -inf entries (masked keys or filtered tokens) get probability exactly 0.
    let (rows, cols) = (4, 300);
    let mut x = random_vec(7, rows * cols, -3.0, 3.0);
    for v in x.iter_mut().step_by(3) {
        *v = f32::NEG_INFINITY;
    }
    let (xb, y) = (be.f32s(&x), be.f32s(&vec![f32::NAN; x.len()]));
    be.run(&softmax::softmax_fwd_launch(
        be.ptr(&y),
        be.ptr(&xb),
        rows,
        cols,
    ));
    let y = be.get_f32(&y);
    assert_close(&y, &softmax_ref(&x, rows, cols), be.tol(), "masked softmax");
    assert!(y.iter().step_by(3).all(|&p| p == 0.0));
}

fn softmax_backward_matches_reference<B: Backend>(be: &B) {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let y = softmax_ref(
            &random_vec(200 + i as u64, rows * cols, -3.0, 3.0),
            rows,
            cols,
        );
        let dy = random_vec(300 + i as u64, rows * cols, -1.0, 1.0);
        let (yb, dyb, dx) = (be.f32s(&y), be.f32s(&dy), be.f32s(&vec![f32::NAN; y.len()]));
        be.run(&softmax::softmax_bwd_launch(
            be.ptr(&dx),
            be.ptr(&yb),
            be.ptr(&dyb),
            rows,
            cols,
        ));
        let what = format!("softmax backward {rows}x{cols}");
        assert_close(
            &be.get_f32(&dx),
            &softmax_bwd_ref(&y, &dy, rows, cols),
            be.tol(),
            &what,
        );
    }
}

fn layernorm_forward_matches_reference<B: Backend>(be: &B) {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let x = random_vec(400 + i as u64, rows * cols, -2.0, 4.0);
        let gamma = random_vec(500 + i as u64, cols, 0.5, 1.5);
        let beta = random_vec(600 + i as u64, cols, -0.5, 0.5);
        let (want_y, want_mean, want_rstd) =
            layernorm_ref(&x, Some(&gamma), Some(&beta), rows, cols, 1e-5);
        let (xb, gb, bb) = (be.f32s(&x), be.f32s(&gamma), be.f32s(&beta));
        let (y, mean, rstd) = (
            be.f32s(&vec![f32::NAN; x.len()]),
            be.f32s(&vec![f32::NAN; rows]),
            be.f32s(&vec![f32::NAN; rows]),
        );
        let p = LnPtrs {
            gamma: be.ptr(&gb),
            beta: be.ptr(&bb),
            mean: be.ptr(&mean),
            rstd: be.ptr(&rstd),
        };
        be.run(&ln::layernorm_fwd_launch(
            be.ptr(&y),
            be.ptr(&xb),
            p,
            rows,
            cols,
            1e-5,
        ));
        let what = format!("layernorm {rows}x{cols}");
        assert_close(&be.get_f32(&y), &want_y, be.tol(), &what);
        assert_close(
            &be.get_f32(&mean),
            &want_mean,
            be.tol(),
            &format!("{what} mean"),
        );
        if cols > 1 {
            assert_close(
                &be.get_f32(&rstd),
                &want_rstd,
                be.tol(),
                &format!("{what} rstd"),
            );
        }
    }
}

fn layernorm_without_affine_or_stats<B: Backend>(be: &B) {
    let (rows, cols) = (10, 256);
    let x = random_vec(8, rows * cols, -1.0, 1.0);
    let (xb, y) = (be.f32s(&x), be.f32s(&vec![f32::NAN; x.len()]));
    be.run(&ln::layernorm_fwd_launch(
        be.ptr(&y),
        be.ptr(&xb),
        LnPtrs::default(),
        rows,
        cols,
        1e-5,
    ));
    assert_close(
        &be.get_f32(&y),
        &layernorm_ref(&x, None, None, rows, cols, 1e-5).0,
        be.tol(),
        "layernorm, no affine",
    );
}

fn layernorm_backward_matches_reference<B: Backend>(be: &B) {
    // 70 rows (the parameter kernel's 32 row-lanes do uneven work), 40 columns (a partial column
    // block) and the model's 512.
    for (i, &(rows, cols)) in [(70usize, 40usize), (33, 512), (3, 1)].iter().enumerate() {
        let x = random_vec(700 + i as u64, rows * cols, -2.0, 2.0);
        let dy = random_vec(800 + i as u64, rows * cols, -1.0, 1.0);
        let gamma = random_vec(900 + i as u64, cols, 0.5, 1.5);
        let (_, mean, rstd) = layernorm_ref(&x, Some(&gamma), None, rows, cols, 1e-5);
        let (want_dx, want_dg, want_db) =
            layernorm_bwd_ref(&dy, &x, &mean, &rstd, Some(&gamma), rows, cols);
        let (xb, dyb, gb, mb, rb) = (
            be.f32s(&x),
            be.f32s(&dy),
            be.f32s(&gamma),
            be.f32s(&mean),
            be.f32s(&rstd),
        );
        let (dx, dg, db) = (
            be.f32s(&vec![f32::NAN; x.len()]),
            be.f32s(&vec![f32::NAN; cols]),
            be.f32s(&vec![f32::NAN; cols]),
        );
        let p = LnPtrs {
            gamma: be.ptr(&gb),
            beta: 0,
            mean: be.ptr(&mb),
            rstd: be.ptr(&rb),
        };
        be.run(&ln::layernorm_bwd_dx_launch(
            be.ptr(&dx),
            be.ptr(&dyb),
            be.ptr(&xb),
            p,
            rows,
            cols,
        ));
        be.run(&ln::layernorm_bwd_params_launch(
            be.ptr(&dg),
            be.ptr(&db),
            be.ptr(&dyb),
            be.ptr(&xb),
            p,
            rows,
            cols,
        ));
        let what = format!("layernorm backward {rows}x{cols}");
        assert_close(&be.get_f32(&dx), &want_dx, be.tol(), &format!("{what} dx"));
        assert_close(
            &be.get_f32(&dg),
            &want_dg,
            be.tol(),
            &format!("{what} dgamma"),
        );
        assert_close(
            &be.get_f32(&db),
            &want_db,
            be.tol(),
            &format!("{what} dbeta"),
        );
    }
}

fn add_layernorm_equals_the_add_then_the_layernorm_kernel<B: Backend>(be: &B) {
    // The fused residual add + LayerNorm must give the very bits of the add (exact in f32) and of
    // layernorm_fwd_f32 run on the sum, with and without the affine parameters; the model's
    // inference relies on it (the transformer's width 512 and the tiny preset's 64 among them).
    for (i, &(rows, cols)) in SHAPES.iter().chain(&[(1024, 512), (7, 64)]).enumerate() {
        let x = random_vec(300 + i as u64, rows * cols, -3.0, 3.0);
        let a = random_vec(400 + i as u64, rows * cols, -1.0, 1.0);
        let (gamma, beta) = (random_vec(500, cols, 0.5, 1.5), random_vec(501, cols, -0.5, 0.5));
        let sum: Vec<f32> = x.iter().zip(&a).map(|(x, a)| x + a).collect();
        let (xb, ab, sb) = (be.f32s(&x), be.f32s(&a), be.f32s(&sum));
        let (gb, bb) = (be.f32s(&gamma), be.f32s(&beta));
        for affine in [true, false] {
            let p = if affine { LnPtrs { gamma: be.ptr(&gb), beta: be.ptr(&bb), ..LnPtrs::default() } } else { LnPtrs::default() };
            let [s_out, y, want] = [0, 1, 2].map(|_| be.f32s(&vec![f32::NAN; x.len()]));
            be.run(&ln::add_layernorm_fwd_launch(be.ptr(&s_out), (be.ptr(&y), DType::F32), be.ptr(&xb), be.ptr(&ab), p, (rows, cols), 1e-5));
            be.run(&ln::layernorm_fwd_launch(be.ptr(&want), be.ptr(&sb), p, rows, cols, 1e-5));
            let what = format!("add + layernorm {rows}x{cols} (affine {affine})");
            let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
            assert_eq!(bits(be.get_f32(&s_out)), bits(sum.clone()), "{what}: the sum");
            assert_eq!(bits(be.get_f32(&y)), bits(be.get_f32(&want)), "{what}: the normalised rows");
            // The bf16-output kernel: the same sum, and the normalised rows rounded as the host's
            // `half` rounds them (read back as pairs of bf16 in u32 words, the first in the low half).
            let (s_bf, y_bf) = (be.f32s(&vec![f32::NAN; x.len()]), be.u32s(&vec![u32::MAX; x.len().div_ceil(2)]));
            be.run(&ln::add_layernorm_fwd_launch(be.ptr(&s_bf), (be.ptr(&y_bf), DType::BF16), be.ptr(&xb), be.ptr(&ab), p, (rows, cols), 1e-5));
            assert_eq!(bits(be.get_f32(&s_bf)), bits(sum.clone()), "{what}, bf16 output: the sum");
            let got: Vec<u16> = be.get_u32(&y_bf).iter().flat_map(|w| [*w as u16, (w >> 16) as u16]).take(x.len()).collect();
            let want_bf16: Vec<u16> = be.get_f32(&want).iter().map(|v| half::bf16::from_f32(*v).to_bits()).collect();
            assert_eq!(got, want_bf16, "{what}: the normalised rows rounded to bf16");
        }
    }
}
