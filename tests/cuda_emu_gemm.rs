//! `kernels/gemm.cu` (64x64 shared-memory tiles, 4x4 outputs per thread, strided operands),
//! launched by its launcher, against f64 reference loops, on the CPU emulator (`emu::*`) and a
//! real GPU (`cuda::*`, skipped without one): the Linear
//! forward (with bias), its two backward products (dW accumulating into an existing gradient), and
//! per-(batch, head) attention products read straight from the interleaved [B, L, H*D] layout.
//! Tolerance: TOL_CUDA_F32 (1e-4 abs + 1e-4 rel), because the kernel sums up to 512 f32 products
//! of size ~1 (rounding error up to ~512 * 6e-8 * |partial sums| ~ 1e-5 .. 1e-4).

mod common;

use common::backend::Backend;
use common::reference::gemm_ref;
use fdm::cuda::ops::gemm::{gemm_launch, GemmParams};
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(
    linear_forward_with_bias,
    linear_backward_products,
    attention_products_per_batch_and_head
);

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

fn linear_forward_with_bias<B: Backend>(be: &B) {
    // Odd sizes (partial tiles everywhere) and the transformer's 512 -> 2048 MLP shape at 1024 rows
    // would be slow on the emulator, so the model-sized case is 256 rows x 512 -> 512.
    for (i, &(m, out, inp)) in [(70usize, 45usize, 37usize), (1, 3, 1), (256, 512, 512)]
        .iter()
        .enumerate()
    {
        let x = random_vec(10 + i as u64, m * inp, -1.0, 1.0);
        let w = random_vec(20 + i as u64, out * inp, -1.0, 1.0);
        let bias = random_vec(30 + i as u64, out, -1.0, 1.0);
        let (xb, wb, bb) = (be.f32s(&x), be.f32s(&w), be.f32s(&bias));
        let y = be.f32s(&vec![f32::NAN; m * out]); // beta = 0 must not read it
        be.run(&gemm_launch(
            be.ptr(&y),
            be.ptr(&xb),
            be.ptr(&wb),
            be.ptr(&bb),
            &GemmParams::linear(m, out, inp),
            1,
        ));
        let y = be.get_f32(&y);
        let mut want = gemm_ref(m, out, inp, |r, k| x[r * inp + k], |o, k| w[o * inp + k]);
        for (j, v) in want.iter_mut().enumerate() {
            *v += bias[j % out] as f64;
        }
        assert_close(
            &y,
            &f32s(&want),
            TOL_CUDA_F32,
            &format!("linear {m}x{inp} -> {out}"),
        );
    }
}

fn linear_backward_products<B: Backend>(be: &B) {
    let (m, out, inp) = (67usize, 50usize, 81usize);
    let x = random_vec(1, m * inp, -1.0, 1.0);
    let w = random_vec(2, out * inp, -1.0, 1.0);
    let dy = random_vec(3, m * out, -1.0, 1.0);
    let (xb, wb, dyb) = (be.f32s(&x), be.f32s(&w), be.f32s(&dy));
    let dx = be.f32s(&vec![f32::NAN; m * inp]);
    be.run(&gemm_launch(
        be.ptr(&dx),
        be.ptr(&dyb),
        be.ptr(&wb),
        0,
        &GemmParams::linear_dx(m, out, inp),
        1,
    ));
    let want = gemm_ref(m, inp, out, |r, o| dy[r * out + o], |i, o| w[o * inp + i]);
    assert_close(&be.get_f32(&dx), &f32s(&want), TOL_CUDA_F32, "linear dX");

    let dw0 = random_vec(4, out * inp, -1.0, 1.0);
    let dwb = be.f32s(&dw0);
    be.run(&gemm_launch(
        be.ptr(&dwb),
        be.ptr(&dyb),
        be.ptr(&xb),
        0,
        &GemmParams::linear_dw(m, out, inp, true),
        1,
    ));
    let dw = be.get_f32(&dwb);
    let mut want = gemm_ref(out, inp, m, |o, r| dy[r * out + o], |i, r| x[r * inp + i]);
    for (v, &d0) in want.iter_mut().zip(&dw0) {
        *v += d0 as f64;
    }
    assert_close(&dw, &f32s(&want), TOL_CUDA_F32, "linear dW accumulated");
}

fn attention_products_per_batch_and_head<B: Backend>(be: &B) {
    // q, k, v: [B, L, H*D] with head h in columns h*D..h*D+D (spec §3.2).
    let (b, l, h, d) = (2usize, 33usize, 3usize, 8usize);
    let hd = h * d;
    let q = random_vec(5, b * l * hd, -1.0, 1.0);
    let k = random_vec(6, b * l * hd, -1.0, 1.0);
    let v = random_vec(7, b * l * hd, -1.0, 1.0);
    let scale = 1.0 / (d as f32).sqrt();
    // S [B, H, L, L] = scale * Q_bh K_bh^T
    let ps = GemmParams {
        m: l as u32,
        n: l as u32,
        k: d as u32,
        batch_inner: h as u32,
        lda_m: hd as u32,
        lda_k: 1,
        ldb_n: hd as u32,
        ldb_k: 1,
        ldc_m: l as u32,
        a_outer: (l * hd) as u32,
        a_inner: d as u32,
        b_outer: (l * hd) as u32,
        b_inner: d as u32,
        c_outer: (h * l * l) as u32,
        c_inner: (l * l) as u32,
        alpha: scale,
        beta: 0.0,
    };
    let (qb, kb, vb) = (be.f32s(&q), be.f32s(&k), be.f32s(&v));
    let sb = be.f32s(&vec![f32::NAN; b * h * l * l]);
    be.run(&gemm_launch(
        be.ptr(&sb),
        be.ptr(&qb),
        be.ptr(&kb),
        0,
        &ps,
        b * h,
    ));
    // O [B, L, H*D] = S_bh V_bh (S used directly as the "probabilities": the product is what matters)
    let po = GemmParams {
        m: l as u32,
        n: d as u32,
        k: l as u32,
        batch_inner: h as u32,
        lda_m: l as u32,
        lda_k: 1,
        ldb_n: 1,
        ldb_k: hd as u32,
        ldc_m: hd as u32,
        a_outer: (h * l * l) as u32,
        a_inner: (l * l) as u32,
        b_outer: (l * hd) as u32,
        b_inner: d as u32,
        c_outer: (l * hd) as u32,
        c_inner: d as u32,
        alpha: 1.0,
        beta: 0.0,
    };
    let ob = be.f32s(&vec![f32::NAN; b * l * hd]);
    be.run(&gemm_launch(
        be.ptr(&ob),
        be.ptr(&sb),
        be.ptr(&vb),
        0,
        &po,
        b * h,
    ));
    let (s, o) = (be.get_f32(&sb), be.get_f32(&ob));

    for bi in 0..b {
        for hi in 0..h {
            let at = |x: &[f32], row: usize, col: usize| x[bi * l * hd + row * hd + hi * d + col];
            let want_s = gemm_ref(l, l, d, |i, p| at(&q, i, p), |j, p| at(&k, j, p));
            let got_s: Vec<f32> = (0..l * l).map(|e| s[(bi * h + hi) * l * l + e]).collect();
            let want_s: Vec<f32> = want_s.iter().map(|&x| (x * scale as f64) as f32).collect();
            assert_close(
                &got_s,
                &want_s,
                TOL_CUDA_F32,
                &format!("scores b{bi} h{hi}"),
            );
            let want_o = gemm_ref(l, d, l, |i, j| got_s[i * l + j], |c, j| at(&v, j, c));
            let got_o: Vec<f32> = (0..l * d).map(|e| at(&o, e / d, e % d)).collect();
            assert_close(
                &got_o,
                &f32s(&want_o),
                TOL_CUDA_F32,
                &format!("output b{bi} h{hi}"),
            );
        }
    }
}
