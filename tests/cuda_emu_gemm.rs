//! Tier 3: `kernels/gemm.cu` (64x64 shared-memory tiles, 4x4 outputs per thread, strided operands)
//! on the CPU emulator, launched by the GPU launchers, against f64 reference loops: the Linear
//! forward (with bias), its two backward products (dW accumulating into an existing gradient), and
//! per-(batch, head) attention products read straight from the interleaved [B, L, H*D] layout.
//! Tolerance: TOL_CUDA_F32 (1e-4 abs + 1e-4 rel), because the kernel sums up to 512 f32 products
//! of size ~1 (rounding error up to ~512 * 6e-8 * |partial sums| ~ 1e-5 .. 1e-4).

mod common;

use common::reference::gemm_ref;
use fdm::cuda::emu::{self, host_ptr, host_ptr_mut};
use fdm::cuda::ops::gemm::{gemm_launch, GemmParams};
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

fn run(l: &fdm::cuda::launch::Launch) {
    unsafe { emu::run(l) }.unwrap_or_else(|e| panic!("{e}"));
}

fn f32s(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

#[test]
fn linear_forward_with_bias_emu() {
    // Odd sizes (partial tiles everywhere) and the transformer's 512 -> 2048 MLP shape at 1024 rows
    // would be slow on the emulator, so the model-sized case is 256 rows x 512 -> 512.
    for (i, &(m, out, inp)) in [(70usize, 45usize, 37usize), (1, 3, 1), (256, 512, 512)].iter().enumerate() {
        let x = random_vec(10 + i as u64, m * inp, -1.0, 1.0);
        let w = random_vec(20 + i as u64, out * inp, -1.0, 1.0);
        let bias = random_vec(30 + i as u64, out, -1.0, 1.0);
        let mut y = vec![f32::NAN; m * out]; // beta = 0 must not read it
        run(&gemm_launch(host_ptr_mut(&mut y), host_ptr(&x), host_ptr(&w), host_ptr(&bias), &GemmParams::linear(m, out, inp), 1));
        let mut want = gemm_ref(m, out, inp, |r, k| x[r * inp + k], |o, k| w[o * inp + k]);
        for (j, v) in want.iter_mut().enumerate() {
            *v += bias[j % out] as f64;
        }
        assert_close(&y, &f32s(&want), TOL_CUDA_F32, &format!("linear {m}x{inp} -> {out}"));
    }
}

#[test]
fn linear_backward_products_emu() {
    let (m, out, inp) = (67usize, 50usize, 81usize);
    let x = random_vec(1, m * inp, -1.0, 1.0);
    let w = random_vec(2, out * inp, -1.0, 1.0);
    let dy = random_vec(3, m * out, -1.0, 1.0);
    let mut dx = vec![f32::NAN; m * inp];
    run(&gemm_launch(host_ptr_mut(&mut dx), host_ptr(&dy), host_ptr(&w), 0, &GemmParams::linear_dx(m, out, inp), 1));
    let want = gemm_ref(m, inp, out, |r, o| dy[r * out + o], |i, o| w[o * inp + i]);
    assert_close(&dx, &f32s(&want), TOL_CUDA_F32, "linear dX");

    let dw0 = random_vec(4, out * inp, -1.0, 1.0);
    let mut dw = dw0.clone();
    run(&gemm_launch(host_ptr_mut(&mut dw), host_ptr(&dy), host_ptr(&x), 0, &GemmParams::linear_dw(m, out, inp, true), 1));
    let mut want = gemm_ref(out, inp, m, |o, r| dy[r * out + o], |i, r| x[r * inp + i]);
    for (v, &d0) in want.iter_mut().zip(&dw0) {
        *v += d0 as f64;
    }
    assert_close(&dw, &f32s(&want), TOL_CUDA_F32, "linear dW accumulated");
}

#[test]
fn attention_products_per_batch_and_head_emu() {
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
    let mut s = vec![f32::NAN; b * h * l * l];
    run(&gemm_launch(host_ptr_mut(&mut s), host_ptr(&q), host_ptr(&k), 0, &ps, b * h));
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
    let mut o = vec![f32::NAN; b * l * hd];
    run(&gemm_launch(host_ptr_mut(&mut o), host_ptr(&s), host_ptr(&v), 0, &po, b * h));

    for bi in 0..b {
        for hi in 0..h {
            let at = |x: &[f32], row: usize, col: usize| x[bi * l * hd + row * hd + hi * d + col];
            let want_s = gemm_ref(l, l, d, |i, p| at(&q, i, p), |j, p| at(&k, j, p));
            let got_s: Vec<f32> = (0..l * l).map(|e| s[(bi * h + hi) * l * l + e]).collect();
            let want_s: Vec<f32> = want_s.iter().map(|&x| (x * scale as f64) as f32).collect();
            assert_close(&got_s, &want_s, TOL_CUDA_F32, &format!("scores b{bi} h{hi}"));
            let want_o = gemm_ref(l, d, l, |i, j| got_s[i * l + j], |c, j| at(&v, j, c));
            let got_o: Vec<f32> = (0..l * d).map(|e| at(&o, e / d, e % d)).collect();
            assert_close(&got_o, &f32s(&want_o), TOL_CUDA_F32, &format!("output b{bi} h{hi}"));
        }
    }
}
