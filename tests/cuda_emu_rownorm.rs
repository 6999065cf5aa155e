//! Tier 3: `kernels/softmax.cu` and `kernels/layernorm.cu` (row reductions over the last dim with
//! warp shuffles and shared memory) on the CPU emulator, launched by the GPU launchers, against
//! f64 reference loops. Shapes include the model's (512 and 1024 columns, spec §3) and awkward
//! ones (1 column, columns not a multiple of 32, rows not a multiple of the block).

mod common;

use common::reference::{layernorm_bwd_ref, layernorm_ref, softmax_bwd_ref, softmax_ref};
use fdm::cuda::emu::{self, host_ptr, host_ptr_mut};
use fdm::cuda::ops::layernorm::{self as ln, LnPtrs};
use fdm::cuda::ops::softmax;
use fdm::testing::{assert_close, random_vec, TOL_CPU_F32};

fn run(l: &fdm::cuda::launch::Launch) {
    unsafe { emu::run(l) }.unwrap_or_else(|e| panic!("{e}"));
}

const SHAPES: [(usize, usize); 6] = [(3, 1), (5, 33), (64, 512), (9, 1024), (2, 1000), (4, 4096)];

#[test]
fn softmax_forward_matches_reference_emu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        // Logits up to +-40: exp would overflow f32 without the max subtraction.
        let x = random_vec(100 + i as u64, rows * cols, -40.0, 40.0);
        let mut y = vec![f32::NAN; x.len()];
        run(&softmax::softmax_fwd_launch(host_ptr_mut(&mut y), host_ptr(&x), rows, cols));
        assert_close(&y, &softmax_ref(&x, rows, cols), TOL_CPU_F32, &format!("softmax {rows}x{cols}"));
    }
}

#[test]
fn softmax_handles_masked_logits_emu() {
    // -inf entries (masked keys or filtered tokens) get probability exactly 0.
    let (rows, cols) = (4, 300);
    let mut x = random_vec(7, rows * cols, -3.0, 3.0);
    for (i, v) in x.iter_mut().enumerate() {
        if i % 3 == 0 {
            *v = f32::NEG_INFINITY;
        }
    }
    let mut y = vec![f32::NAN; x.len()];
    run(&softmax::softmax_fwd_launch(host_ptr_mut(&mut y), host_ptr(&x), rows, cols));
    assert_close(&y, &softmax_ref(&x, rows, cols), TOL_CPU_F32, "masked softmax");
    assert!(y.iter().step_by(3).all(|&p| p == 0.0));
}

#[test]
fn softmax_backward_matches_reference_emu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let y = softmax_ref(&random_vec(200 + i as u64, rows * cols, -3.0, 3.0), rows, cols);
        let dy = random_vec(300 + i as u64, rows * cols, -1.0, 1.0);
        let mut dx = vec![f32::NAN; y.len()];
        run(&softmax::softmax_bwd_launch(host_ptr_mut(&mut dx), host_ptr(&y), host_ptr(&dy), rows, cols));
        assert_close(&dx, &softmax_bwd_ref(&y, &dy, rows, cols), TOL_CPU_F32, &format!("softmax backward {rows}x{cols}"));
    }
}

#[test]
fn layernorm_forward_matches_reference_emu() {
    for (i, &(rows, cols)) in SHAPES.iter().enumerate() {
        let x = random_vec(400 + i as u64, rows * cols, -2.0, 4.0);
        let gamma = random_vec(500 + i as u64, cols, 0.5, 1.5);
        let beta = random_vec(600 + i as u64, cols, -0.5, 0.5);
        let (want_y, want_mean, want_rstd) = layernorm_ref(&x, Some(&gamma), Some(&beta), rows, cols, 1e-5);
        let (mut y, mut mean, mut rstd) = (vec![f32::NAN; x.len()], vec![f32::NAN; rows], vec![f32::NAN; rows]);
        let p = LnPtrs { gamma: host_ptr(&gamma), beta: host_ptr(&beta), mean: host_ptr_mut(&mut mean), rstd: host_ptr_mut(&mut rstd) };
        run(&ln::layernorm_fwd_launch(host_ptr_mut(&mut y), host_ptr(&x), p, rows, cols, 1e-5));
        let what = format!("layernorm {rows}x{cols}");
        assert_close(&y, &want_y, TOL_CPU_F32, &what);
        assert_close(&mean, &want_mean, TOL_CPU_F32, &format!("{what} mean"));
        if cols > 1 {
            assert_close(&rstd, &want_rstd, TOL_CPU_F32, &format!("{what} rstd"));
        }
    }
}

#[test]
fn layernorm_without_affine_or_stats_emu() {
    let (rows, cols) = (10, 256);
    let x = random_vec(8, rows * cols, -1.0, 1.0);
    let mut y = vec![f32::NAN; x.len()];
    run(&ln::layernorm_fwd_launch(host_ptr_mut(&mut y), host_ptr(&x), LnPtrs::default(), rows, cols, 1e-5));
    assert_close(&y, &layernorm_ref(&x, None, None, rows, cols, 1e-5).0, TOL_CPU_F32, "layernorm, no affine");
}

#[test]
fn layernorm_backward_matches_reference_emu() {
    // 70 rows (the parameter kernel's 32 row-lanes do uneven work), 40 columns (a partial column
    // block) and the model's 512.
    for (i, &(rows, cols)) in [(70usize, 40usize), (33, 512), (3, 1)].iter().enumerate() {
        let x = random_vec(700 + i as u64, rows * cols, -2.0, 2.0);
        let dy = random_vec(800 + i as u64, rows * cols, -1.0, 1.0);
        let gamma = random_vec(900 + i as u64, cols, 0.5, 1.5);
        let (_, mean, rstd) = layernorm_ref(&x, Some(&gamma), None, rows, cols, 1e-5);
        let (want_dx, want_dg, want_db) = layernorm_bwd_ref(&dy, &x, &mean, &rstd, Some(&gamma), rows, cols);
        let (mut dx, mut dg, mut db) = (vec![f32::NAN; x.len()], vec![f32::NAN; cols], vec![f32::NAN; cols]);
        let p = LnPtrs { gamma: host_ptr(&gamma), beta: 0, mean: host_ptr(&mean), rstd: host_ptr(&rstd) };
        run(&ln::layernorm_bwd_dx_launch(host_ptr_mut(&mut dx), host_ptr(&dy), host_ptr(&x), p, rows, cols));
        run(&ln::layernorm_bwd_params_launch(host_ptr_mut(&mut dg), host_ptr_mut(&mut db), host_ptr(&dy), host_ptr(&x), p, rows, cols));
        let what = format!("layernorm backward {rows}x{cols}");
        assert_close(&dx, &want_dx, TOL_CPU_F32, &format!("{what} dx"));
        assert_close(&dg, &want_dg, TOL_CPU_F32, &format!("{what} dgamma"));
        assert_close(&db, &want_db, TOL_CPU_F32, &format!("{what} dbeta"));
    }
}
