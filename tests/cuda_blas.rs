//! cuBLAS behind the Linear forward (`fdm::cuda::blas`) and its gradients (`blas_gemm`).
//! * Everywhere: the availability probe gives a reason where cuBLAS is not used (the emulated
//!   device; no libcublas; FDM_NO_CUBLAS=1), `linear_fwd` / `linear_bf16_fwd` fall back to the
//!   hand-written kernels on the emulated device, the cuBLAS entry points there are errors (not
//!   panics), and the bias broadcast launch the cuBLAS path starts with is checked on the emulator.
//! * On a GPU with cuBLAS (`*_cuda`; `SKIP` without one, a failure with FDM_REQUIRE_CUDA=1 unless
//!   FDM_NO_CUBLAS=1 turned cuBLAS off): the f32 linear against the f64 reference and the
//!   hand-written kernel (TOL_CUDA_F32), and the bf16-weight linear against the f64 sum of the
//!   bf16-rounded operands and the hand-written tensor-core kernel (the bound of
//!   `cuda_emu_gemm_tc.rs`: 1e-3 * (sum |p| + |bias|) + 1e-6), at the transformer's shapes
//!   (1024 tokens; 512 -> 512, 512 -> 2048, 2048 -> 512) and an odd one, with and without bias;
//!   the f32 Linear's dx and dw (`gemm::linear_dx` / `linear_dw`, on cuBLAS) the same way.
//!   The bias in cuBLASLt's epilogue (`BiasPath::Epilogue`, the default): the same bound
//!   against the f64 reference and twice it against the bias-rows path, GELU2 fused or not, and
//!   on the transformer's shapes it must have run on cuBLASLt (not fallen back). An input already
//!   in bf16 (`bf16_linear_of_bf16`, no cast): the same bits as the cast path on both bias paths.

mod common;

use common::reference::gemm_ref;
use fdm::cuda::launch::{device_ptr, run_on_device};
use fdm::cuda::blas::BiasPath;
use fdm::cuda::ops::gemm_tc::InputAct;
use fdm::cuda::ops::{gemm, gemm_tc};
use fdm::cuda::{blas, blas_lt, CudaDevice, CudaStorage};
use fdm::storage::CpuStorage;
use fdm::testing::{assert_close, cuda_device_or_skip, cuda_required, random_vec, TOL_CUDA_F32};
use half::bf16;
use rayon::prelude::*;

/// (m, out, in): the transformer's linears at one image, and a shape with no aligned size.
const SHAPES: [(usize, usize, usize); 4] = [(1024, 512, 512), (1024, 2048, 512), (1024, 512, 2048), (7, 13, 33)];

fn up(dev: &CudaDevice, v: &[f32]) -> CudaStorage {
    dev.upload(&CpuStorage::F32(v.to_vec())).unwrap()
}

fn up_bf16(dev: &CudaDevice, v: &[bf16]) -> CudaStorage {
    dev.upload(&CpuStorage::BF16(v.to_vec())).unwrap()
}

fn down(s: &CudaStorage) -> Vec<f32> {
    s.download().unwrap().to_f32_vec()
}

/// Inputs of one case: x [m, in] f32, w [out, in] (f32; callers round it for bf16), bias [out].
fn inputs(seed: u64, (m, out, inp): (usize, usize, usize)) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (random_vec(seed, m * inp, -1.0, 1.0), random_vec(seed + 1, out * inp, -0.5, 0.5), random_vec(seed + 2, out, -1.0, 1.0))
}

/// Per output element: the f64 sum of x w^T (+ bias) and the sum of the terms' magnitudes.
fn reference(x: &[f32], w: &[f32], bias: Option<&[f32]>, (m, out, inp): (usize, usize, usize)) -> (Vec<f64>, Vec<f64>) {
    let rows: Vec<(Vec<f64>, Vec<f64>)> = (0..m)
        .into_par_iter()
        .map(|r| {
            let mut sum = gemm_ref(1, out, inp, |_, k| x[r * inp + k], |o, k| w[o * inp + k]);
            let mut abs = gemm_ref(1, out, inp, |_, k| x[r * inp + k].abs(), |o, k| w[o * inp + k].abs());
            for (o, b) in bias.unwrap_or_default().iter().enumerate() {
                sum[o] += *b as f64;
                abs[o] += b.abs() as f64;
            }
            (sum, abs)
        })
        .collect();
    (rows.iter().flat_map(|r| r.0.clone()).collect(), rows.into_iter().flat_map(|r| r.1).collect())
}

/// `got` within `scale * (1e-3 * abs + 1e-6)` of `want` everywhere.
#[track_caller]
fn assert_within_bf16_bound(got: &[f32], want: &[f64], abs: &[f64], scale: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, ((&g, &e), &a)) in got.iter().zip(want).zip(abs).enumerate() {
        let bound = scale * (1e-3 * a + 1e-6);
        assert!((g as f64 - e).abs() <= bound, "{what}: element {i}: got {g}, expected {e} (bound {bound:.3e})");
    }
}

fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&e| e as f32).collect()
}

fn round_bf16(v: &[f32]) -> Vec<bf16> {
    v.iter().map(|&e| bf16::from_f32(e)).collect()
}

fn widen(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|e| e.to_f32()).collect()
}

#[test]
fn probe_gives_a_reason_where_cublas_is_not_used() {
    let emu = CudaDevice::emulated();
    assert!(!blas::available(&emu));
    let why = blas::unavailable_reason(&emu).expect("the emulated device never uses cuBLAS");
    assert!(why.contains("emulated"), "{why}");
    let line = blas::status_line(&emu);
    assert!(line.contains("not used") && line.contains(&why), "{line}");
    match blas::library_status() {
        Ok(()) => println!("cuBLAS library present"),
        Err(why) => assert!(why.contains("libcublas") || why.contains(blas::DISABLE_ENV), "{why}"),
    }
}

#[test]
fn linear_falls_back_to_the_kernels_on_the_emulated_device() {
    if !fdm::testing::emulator_or_skip("linear_falls_back_to_the_kernels_on_the_emulated_device") {
        return;
    }
    let dev = CudaDevice::emulated();
    let shape @ (m, out, inp) = SHAPES[3];
    let (x, w, bias) = inputs(1, shape);
    for with_bias in [false, true] {
        let b = with_bias.then(|| up(&dev, &bias));
        let y = down(&gemm::linear_fwd(&up(&dev, &x), &up(&dev, &w), b.as_ref(), m, out, inp).unwrap());
        let (want, _) = reference(&x, &w, with_bias.then_some(&bias[..]), shape);
        assert_close(&y, &to_f32(&want), TOL_CUDA_F32, &format!("f32 linear on the emulator (bias {with_bias})"));

        let wb = round_bf16(&w);
        let y = down(&gemm_tc::linear_bf16_fwd(&up(&dev, &x), &up_bf16(&dev, &wb), b.as_ref(), m, out, inp).unwrap());
        let (want, abs) = reference(&widen(&round_bf16(&x)), &widen(&wb), with_bias.then_some(&bias[..]), shape);
        assert_within_bf16_bound(&y, &want, &abs, 1.0, &format!("bf16 linear on the emulator (bias {with_bias})"));
    }
    // The cuBLAS entry points themselves refuse the emulated device with an error.
    let mut y = dev.alloc(fdm::DType::F32, m * out).unwrap();
    let err = blas::sgemm_linear(&mut y, &up(&dev, &x), &up(&dev, &w), None, m, out, inp).unwrap_err().to_string();
    assert!(err.contains("cuBLAS unavailable"), "{err}");
    let err = blas::bf16_linear(&mut y, &up(&dev, &x), &up_bf16(&dev, &round_bf16(&w)), None, m, out, inp).unwrap_err().to_string();
    assert!(err.contains("cuBLAS unavailable"), "{err}");
    let (wb, b) = (up_bf16(&dev, &round_bf16(&w)), up(&dev, &bias));
    let err = blas::bf16_linear_on(BiasPath::Epilogue, InputAct::Identity, &mut y, &up(&dev, &x), &wb, Some(&b), m, out, inp).unwrap_err().to_string();
    assert!(err.contains("cuBLAS unavailable"), "{err}");
    assert_eq!(blas::cublaslt_matmuls(&dev), 0);
}

#[test]
fn bias_rows_launch_broadcasts_the_bias() {
    if !fdm::testing::emulator_or_skip("bias_rows_launch_broadcasts_the_bias") {
        return;
    }
    let dev = CudaDevice::emulated();
    let (m, out) = (5, 7);
    let bias: Vec<f32> = (0..out).map(|o| o as f32 * 1.5 - 2.0).collect();
    let b = up(&dev, &bias);
    let y = up(&dev, &vec![f32::NAN; m * out]);
    run_on_device(&dev, &blas::bias_rows_launch(device_ptr(&y, 0), device_ptr(&b, 0), m, out).unwrap()).unwrap();
    assert_eq!(down(&y), bias.repeat(m));
}

/// A GPU whose linears run on cuBLAS, or None after a SKIP line. With FDM_REQUIRE_CUDA=1 a GPU
/// without a usable cuBLAS fails, unless FDM_NO_CUBLAS=1 asked for that.
fn cublas_device_or_skip(test: &str) -> Option<CudaDevice> {
    let dev = cuda_device_or_skip(test)?;
    match blas::unavailable_reason(&dev) {
        None => Some(dev),
        Some(why) if cuda_required() && !why.contains(blas::DISABLE_ENV) => panic!("{test}: FDM_REQUIRE_CUDA=1 but cuBLAS is not usable: {why}"),
        Some(why) => {
            println!("{test}: SKIP (cuBLAS not used: {why})");
            None
        }
    }
}

#[test]
fn cublas_f32_linear_matches_reference_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_f32_linear_matches_reference_cuda") else { return };
    for (i, &shape @ (m, out, inp)) in SHAPES.iter().enumerate() {
        let (x, w, bias) = inputs(10 * i as u64, shape);
        let (xs, ws, bs) = (up(&dev, &x), up(&dev, &w), up(&dev, &bias));
        for with_bias in [false, true] {
            let what = format!("{m}x{inp} -> {out} (bias {with_bias})");
            let b = with_bias.then_some(&bs);
            let mut y = dev.alloc(fdm::DType::F32, m * out).unwrap();
            blas::sgemm_linear(&mut y, &xs, &ws, b, m, out, inp).unwrap();
            let y = down(&y);
            let (want, _) = reference(&x, &w, with_bias.then_some(&bias[..]), shape);
            assert_close(&y, &to_f32(&want), TOL_CUDA_F32, &format!("cuBLAS vs f64: {what}"));
            let kernel = down(&gemm::linear_fwd_kernel(&xs, &ws, b, m, out, inp).unwrap());
            assert_close(&y, &kernel, TOL_CUDA_F32, &format!("cuBLAS vs the hand-written kernel: {what}"));
            let dispatched = down(&gemm::linear_fwd(&xs, &ws, b, m, out, inp).unwrap());
            assert_close(&dispatched, &y, TOL_CUDA_F32, &format!("linear_fwd (on cuBLAS): {what}"));
        }
    }
}

#[test]
fn cublas_linear_gradients_match_the_kernel_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_linear_gradients_match_the_kernel_cuda") else { return };
    for (i, &(m, out, inp)) in SHAPES.iter().enumerate() {
        // g [m, out] plays x's part in `inputs`, with x [m, inp] from another seed.
        let (g, w, _) = inputs(40 + 10 * i as u64, (m, inp, out));
        let x = random_vec(45 + 10 * i as u64, m * inp, -1.0, 1.0);
        let (gs, ws, xs) = (up(&dev, &g), up(&dev, &w), up(&dev, &x));
        let what = format!("{m}x{inp} -> {out}");
        // dx [m, inp] = g w: the f64 reference as a product with w^T [inp, out].
        let dx = down(&gemm::linear_dx(&gs, &ws, m, out, inp).unwrap());
        let want: Vec<f64> = (0..m).into_par_iter().flat_map(|r| gemm_ref(1, inp, out, |_, o| g[r * out + o], |c, o| w[o * inp + c])).collect();
        assert_close(&dx, &to_f32(&want), TOL_CUDA_F32, &format!("dx on cuBLAS vs f64: {what}"));
        let mut kernel = dev.alloc(fdm::DType::F32, m * inp).unwrap();
        gemm::gemm_into(&mut kernel, &gs, &ws, None, &gemm::GemmParams::linear_dx(m, out, inp), 1).unwrap();
        assert_close(&dx, &down(&kernel), TOL_CUDA_F32, &format!("dx on cuBLAS vs the hand-written kernel: {what}"));
        // dw [out, inp] = g^T x.
        let dw = down(&gemm::linear_dw(&gs, &xs, m, out, inp).unwrap());
        let want: Vec<f64> = (0..out).into_par_iter().flat_map(|o| gemm_ref(1, inp, m, |_, r| g[r * out + o], |c, r| x[r * inp + c])).collect();
        assert_close(&dw, &to_f32(&want), TOL_CUDA_F32, &format!("dw on cuBLAS vs f64: {what}"));
        let mut kernel = dev.alloc(fdm::DType::F32, out * inp).unwrap();
        gemm::gemm_into(&mut kernel, &gs, &xs, None, &gemm::GemmParams::linear_dw(m, out, inp, false), 1).unwrap();
        assert_close(&dw, &down(&kernel), TOL_CUDA_F32, &format!("dw on cuBLAS vs the hand-written kernel: {what}"));
    }
}

#[test]
fn cublas_bf16_linear_matches_tensor_core_kernel_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_bf16_linear_matches_tensor_core_kernel_cuda") else { return };
    for (i, &shape @ (m, out, inp)) in SHAPES.iter().enumerate() {
        let (x, w, bias) = inputs(100 + 10 * i as u64, shape);
        let wb = round_bf16(&w);
        let (xs, ws, bs) = (up(&dev, &x), up_bf16(&dev, &wb), up(&dev, &bias));
        for with_bias in [false, true] {
            let what = format!("{m}x{inp} -> {out} (bias {with_bias})");
            let b = with_bias.then_some(&bs);
            let mut y = dev.alloc(fdm::DType::F32, m * out).unwrap();
            blas::bf16_linear(&mut y, &xs, &ws, b, m, out, inp).unwrap();
            let y = down(&y);
            let (want, abs) = reference(&widen(&round_bf16(&x)), &widen(&wb), with_bias.then_some(&bias[..]), shape);
            assert_within_bf16_bound(&y, &want, &abs, 1.0, &format!("cuBLAS vs f64 of the bf16 operands: {what}"));
            // Both within the bound of the same reference, so within twice of each other.
            let kernel = down(&gemm_tc::linear_bf16_fwd_with(None, &xs, &ws, b, m, out, inp).unwrap());
            assert_within_bf16_bound(&y, &to_f64(&kernel), &abs, 2.0, &format!("cuBLAS vs the tensor-core kernel: {what}"));
            let dispatched = down(&gemm_tc::linear_bf16_fwd(&xs, &ws, b, m, out, inp).unwrap());
            assert_within_bf16_bound(&dispatched, &want, &abs, 1.0, &format!("linear_bf16_fwd (on cuBLAS): {what}"));
        }
    }
}

/// The bias in cuBLASLt's epilogue against the f64 reference and the bias-rows path, plain and
/// after GELU2, on the transformer's shapes at one and four images and the odd shape.
#[test]
fn cublaslt_bias_epilogue_matches_bias_rows_cuda() {
    let Some(dev) = cublas_device_or_skip("cublaslt_bias_epilogue_matches_bias_rows_cuda") else { return };
    let shapes = [SHAPES[0], SHAPES[1], SHAPES[2], (4096, 1536, 512), SHAPES[3]];
    for (i, &shape @ (m, out, inp)) in shapes.iter().enumerate() {
        let (x, w, bias) = inputs(300 + 10 * i as u64, shape);
        let wb = round_bf16(&w);
        let (xs, ws, bs) = (up(&dev, &x), up_bf16(&dev, &wb), up(&dev, &bias));
        for act in [InputAct::Identity, InputAct::Gelu2] {
            let what = format!("{m}x{inp} -> {out} ({act:?})");
            let before = blas::cublaslt_matmuls(&dev);
            let mut y = dev.alloc(fdm::DType::F32, m * out).unwrap();
            blas::bf16_linear_on(BiasPath::Epilogue, act, &mut y, &xs, &ws, Some(&bs), m, out, inp).unwrap();
            let ran = blas::cublaslt_matmuls(&dev) - before;
            let y = down(&y);
            // GELU2 by the CPU op (the reference above rounds its output to bf16, so the last
            // bits of exp do not matter to the bound).
            let xa: Vec<f32> = match act {
                InputAct::Identity => x.clone(),
                InputAct::Gelu2 => fdm::ops::unary::gelu2(&fdm::Tensor::from_vec(x.clone(), &[m, inp]).unwrap()).unwrap().to_vec_f32().unwrap(),
            };
            let (want, abs) = reference(&widen(&round_bf16(&xa)), &widen(&wb), Some(&bias), shape);
            assert_within_bf16_bound(&y, &want, &abs, 1.0, &format!("cuBLASLt vs f64 of the bf16 operands: {what}"));
            let mut rows = dev.alloc(fdm::DType::F32, m * out).unwrap();
            blas::bf16_linear_on(BiasPath::Rows, act, &mut rows, &xs, &ws, Some(&bs), m, out, inp).unwrap();
            assert_within_bf16_bound(&y, &to_f64(&down(&rows)), &abs, 2.0, &format!("cuBLASLt vs bias rows: {what}"));
            if (m, out, inp) == SHAPES[3] {
                println!("{what}: {}", if ran == 1 { "on cuBLASLt" } else { "no cuBLASLt algorithm: bias rows" });
            } else if blas_lt::library_present() {
                assert_eq!(ran, 1, "{what}: the transformer's shape must run on cuBLASLt, not fall back");
            }
        }
    }
}

/// A bf16 input read as it is gives the bits of the f32 input cast by the prep launch: the same
/// GEMM of the same operands, with the bias in the epilogue or in rows, with and without a bias.
#[test]
fn bf16_input_skips_the_cast_with_the_same_bits_cuda() {
    let Some(dev) = cublas_device_or_skip("bf16_input_skips_the_cast_with_the_same_bits_cuda") else { return };
    for (i, &shape @ (m, out, inp)) in [SHAPES[0], (4096, 1536, 512), SHAPES[3]].iter().enumerate() {
        let (x, w, bias) = inputs(500 + 10 * i as u64, shape);
        let (xs, xb, ws, bs) = (up(&dev, &x), up_bf16(&dev, &round_bf16(&x)), up_bf16(&dev, &round_bf16(&w)), up(&dev, &bias));
        for path in [BiasPath::Epilogue, BiasPath::Rows] {
            for b in [Some(&bs), None] {
                let what = format!("{m}x{inp} -> {out}, {path:?}, bias {}", b.is_some());
                let [mut cast, mut read] = [0, 1].map(|_| dev.alloc(fdm::DType::F32, m * out).unwrap());
                blas::bf16_linear_on(path, InputAct::Identity, &mut cast, &xs, &ws, b, m, out, inp).unwrap();
                blas::bf16_linear_of_bf16(path, &mut read, &xb, &ws, b, m, out, inp).unwrap();
                assert_eq!(down(&read), down(&cast), "{what}");
            }
        }
    }
    let mut y = dev.alloc(fdm::DType::F32, 4 * 8).unwrap();
    let w = up_bf16(&dev, &round_bf16(&[0.5; 8 * 16]));
    let err = blas::bf16_linear_of_bf16(BiasPath::Epilogue, &mut y, &up(&dev, &[1.0; 4 * 16]), &w, None, 4, 8, 16).unwrap_err().to_string();
    assert!(err.contains("bf16 input"), "an f32 input is not a bf16 one: {err}");
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&e| e as f64).collect()
}

/// The identity weight: the output must be exactly bf16(x), which the tolerance of the other
/// test could not tell from x (random-sign rounding errors partly cancel in long sums).
#[test]
fn cublas_bf16_linear_rounds_activations_to_bf16_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_bf16_linear_rounds_activations_to_bf16_cuda") else { return };
    let (m, n) = (33, 64);
    let x = random_vec(7, m * n, -3.0, 3.0);
    let eye: Vec<bf16> = (0..n * n).map(|e| bf16::from_f32(if e / n == e % n { 1.0 } else { 0.0 })).collect();
    let mut y = dev.alloc(fdm::DType::F32, m * n).unwrap();
    blas::bf16_linear(&mut y, &up(&dev, &x), &up_bf16(&dev, &eye), None, m, n, n).unwrap();
    assert_eq!(down(&y), widen(&round_bf16(&x)));
}

#[test]
fn cublas_linear_checks_are_errors_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_linear_checks_are_errors_cuda") else { return };
    let (m, out, inp) = (4, 8, 16);
    let (x, w) = (up(&dev, &vec![0.5; m * inp]), up(&dev, &vec![0.25; out * inp]));
    let mut y = dev.alloc(fdm::DType::F32, m * out).unwrap();
    assert!(blas::sgemm_linear(&mut y, &up(&dev, &[1.0; 10]), &w, None, m, out, inp).is_err());
    assert!(blas::bf16_linear(&mut y, &x, &w, None, m, out, inp).is_err(), "an f32 weight is not a bf16 one");
    let mut short = dev.alloc(fdm::DType::F32, m * out - 1).unwrap();
    assert!(blas::sgemm_linear(&mut short, &x, &w, None, m, out, inp).is_err());
    blas::sgemm_linear(&mut y, &x, &w, None, m, out, inp).unwrap();
    assert_eq!(down(&y), vec![2.0; m * out]);
}

/// The MLP's second Linear with GELU2 fused into the input cast: the same bits as the unary
/// kernel, then the cuBLAS bf16 linear (one function, one summation order), with and without bias.
#[test]
fn cublas_linear_after_gelu2_equals_gelu2_then_linear_cuda() {
    let Some(dev) = cublas_device_or_skip("cublas_linear_after_gelu2_equals_gelu2_then_linear_cuda") else { return };
    let (m, out, inp) = (1024, 512, 2048);
    let (x, w, bias) = inputs(77, (m, out, inp));
    let on = |v: &[f32], shape: &[usize]| fdm::Tensor::from_vec(v.to_vec(), shape).unwrap().to_device(&fdm::Device::Cuda(dev.clone())).unwrap();
    let (xt, bt) = (on(&x, &[m, inp]), on(&bias, &[out]));
    let wt = on(&w, &[out, inp]).to_dtype(fdm::DType::BF16).unwrap();
    for b in [Some(&bt), None] {
        let fused = fdm::ops::matmul::linear_after_gelu2(&xt, &wt, b).unwrap().to_vec_f32().unwrap();
        let apart = fdm::ops::matmul::linear(&fdm::ops::unary::gelu2(&xt).unwrap(), &wt, b).unwrap().to_vec_f32().unwrap();
        assert_eq!(fused, apart, "linear_after_gelu2 vs gelu2 + linear (bias {})", b.is_some());
    }
}
