//! bf16 storage at the Tensor level: `Tensor::to_dtype` f32 <-> bf16 (rounding like
//! `half::bf16::from_f32`, ties to even, exact widening) and `ops::linear` with a bf16 weight
//! (b, y f32; x f32, or bf16 as a LayerNorm writes it for such a Linear: the same bits as its f32
//! values), on the CPU and on a CUDA device (`emu::*` on the emulated device, whose linear runs
//! the tensor-core kernel's emulated twin; `cuda::*` on a GPU, SKIP without one: there cuBLAS
//! reads the bf16 input without the cast), plus the errors: bf16 weights are inference-only, and
//! a bf16 input needs a bf16 weight.
//!
//! Tolerance of the device linear against the CPU arm (same bf16 weights): both round the same
//! activations to bf16 (the CPU does since 2026-11-26), so an output differs by the f32 summation
//! order only, K * 2^-24 of sum_k |x_k w_k| (< 2^-15 here). The test allows
//! 2^-8 * sum_k |x_k w_k| + 1e-6, the bound of when the CPU kept the activations f32 (it covers
//! one 2^-9 rounding per term), so it would also pass a device that skipped the rounding: the
//! exact CPU test below and the GEMM kernel's identity test (tests/cuda_emu_gemm_tc.rs) pin that.
//! (A plain relative tolerance does not fit: outputs near zero have cancelled sums whose error
//! is that of the terms.)

mod common;

use common::device::{on, rand};
use fdm::autograd::Tape;
use fdm::cuda::CudaDevice;
use fdm::ops;
use fdm::storage::CpuStorage;
use fdm::testing::random_vec;
use fdm::{DType, Tensor};
use half::bf16;

device_tests!(
    to_dtype_rounds_like_half_on_the_device,
    linear_with_bf16_weight_matches_the_cpu,
    bf16_outputs_are_the_f32_outputs_rounded_on_the_device
);

/// Values that exercise the rounding: ties to even both ways, just above a tie, NaN, Inf, the
/// largest finite f32 (overflows to Inf), subnormals, and random values.
fn awkward_values() -> Vec<f32> {
    let mut v: Vec<f32> = [
        0x3f80_8000u32,
        0x3f81_8000,
        0xbf81_8000,
        0x3f80_8001,
        0x7f7f_ffff,
        0x0000_8000,
        0x8001_8000,
    ]
    .iter()
    .map(|&b| f32::from_bits(b))
    .collect();
    v.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]);
    v.extend(random_vec(11, 240, -50.0, 50.0));
    v
}

fn half_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| bf16::from_f32(x).to_bits()).collect()
}

fn bits_of(t: &Tensor) -> Vec<u16> {
    match t.to_cpu_storage().unwrap() {
        CpuStorage::BF16(v) => v.iter().map(|x| x.to_bits()).collect(),
        other => panic!("expected bf16, got {:?}", other.dtype()),
    }
}

/// Same bits, NaN matching any NaN.
fn same_bits(got: &[u16], want: &[u16], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let both_nan = bf16::from_bits(g).is_nan() && bf16::from_bits(w).is_nan();
        assert!(
            g == w || both_nan,
            "{what}: element {i}: {g:#06x} vs {w:#06x}"
        );
    }
}

#[test]
fn to_dtype_rounds_like_half_cpu() {
    let v = awkward_values();
    let x = Tensor::from_vec(v.clone(), &[v.len()]).unwrap();
    let h = x.to_dtype(DType::BF16).unwrap();
    assert_eq!(h.dtype(), DType::BF16);
    same_bits(&bits_of(&h), &half_bits(&v), "f32 -> bf16");
    let back = h.to_dtype(DType::F32).unwrap().to_vec_f32().unwrap();
    let want: Vec<f32> = half_bits(&v)
        .iter()
        .map(|&b| bf16::from_bits(b).to_f32())
        .collect();
    for (i, (&b, &w)) in back.iter().zip(&want).enumerate() {
        assert!(
            b.to_bits() == w.to_bits() || (b.is_nan() && w.is_nan()),
            "bf16 -> f32 element {i}"
        );
    }
}

fn to_dtype_rounds_like_half_on_the_device(dev: CudaDevice) {
    let v = awkward_values();
    let x = on(
        &dev,
        &Tensor::from_vec(v.clone(), &[3, v.len() / 3]).unwrap(),
    );
    let h = x.to_dtype(DType::BF16).unwrap();
    assert!(!h.device().is_cpu(), "the cast stays on the device");
    assert_eq!((h.dtype(), h.shape()), (DType::BF16, x.shape()));
    same_bits(&bits_of(&h), &half_bits(&v), "f32 -> bf16 on the device");
    let back = h.to_dtype(DType::F32).unwrap();
    assert_eq!(back.dtype(), DType::F32);
    let cpu_back = Tensor::from_vec(v.clone(), &[v.len()])
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let (b, w) = (back.to_vec_f32().unwrap(), cpu_back.to_vec_f32().unwrap());
    for (i, (&b, &w)) in b.iter().zip(&w).enumerate() {
        assert!(
            b.to_bits() == w.to_bits() || (b.is_nan() && w.is_nan()),
            "round trip element {i}: {b} vs {w}"
        );
    }
    // A strided view is made dense first.
    let t = on(&dev, &rand(4, &[6, 10], -3.0, 3.0))
        .transpose(0, 1)
        .unwrap();
    let want = half_bits(&t.to_vec_f32().unwrap());
    same_bits(
        &bits_of(&t.to_dtype(DType::BF16).unwrap()),
        &want,
        "transposed view -> bf16",
    );
}

#[test]
fn linear_with_bf16_weight_is_the_f32_linear_of_the_rounded_operands_cpu() {
    // The tensor cores' numerics on the CPU: exactly the f32 linear of bf16(x) and the widened
    // weight (and not that of the unrounded x).
    let (x, w, b) = (
        rand(1, &[2, 9, 40], -2.0, 2.0),
        rand(2, &[33, 40], -0.5, 0.5),
        rand(3, &[33], -1.0, 1.0),
    );
    let wh = w.to_dtype(DType::BF16).unwrap();
    let y = ops::matmul::linear(&x, &wh, Some(&b)).unwrap();
    let xr = x.to_dtype(DType::BF16).unwrap().to_dtype(DType::F32).unwrap();
    let wide = wh.to_dtype(DType::F32).unwrap();
    let want = ops::matmul::linear(&xr, &wide, Some(&b)).unwrap();
    assert_eq!(y.shape(), [2, 9, 33]);
    assert_eq!(y.to_vec_f32().unwrap(), want.to_vec_f32().unwrap(), "bf16 linear cpu");
    let unrounded = ops::matmul::linear(&x, &wide, Some(&b)).unwrap();
    assert_ne!(y.to_vec_f32().unwrap(), unrounded.to_vec_f32().unwrap(), "the input must be rounded");
    // An input already in bf16: the same bits.
    let of_bf16 = ops::matmul::linear(&x.to_dtype(DType::BF16).unwrap(), &wh, Some(&b)).unwrap();
    assert_eq!(of_bf16.to_vec_f32().unwrap(), y.to_vec_f32().unwrap(), "bf16 input cpu");
}

/// `|got - want| <= 2^-8 * sum_k |x[r, k] w[o, k]| + 1e-6` for every output (bound in the header);
/// `w` is `[out, inp]`.
fn within_activation_rounding(got: &Tensor, want: &Tensor, x: &Tensor, w: &Tensor, what: &str) {
    let (out, inp) = (w.shape()[0], w.shape()[1]);
    let (got, want) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    let (x, w) = (x.to_vec_f32().unwrap(), w.to_vec_f32().unwrap());
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (e, (&g, &r)) in got.iter().zip(&want).enumerate() {
        let (row, o) = (e / out, e % out);
        let scale: f64 = (0..inp)
            .map(|k| (x[row * inp + k] as f64 * w[o * inp + k] as f64).abs())
            .sum();
        let bound = scale / 256.0 + 1e-6;
        assert!(
            ((g - r) as f64).abs() <= bound,
            "{what}: element {e}: {g} vs {r} (bound {bound:e})"
        );
    }
}

fn linear_with_bf16_weight_matches_the_cpu(dev: CudaDevice) {
    // Odd sizes (partial tiles, K not a multiple of 16) and the tiny transformer's MLP shapes.
    for (i, &(lead, inp, out)) in [
        (&[2usize, 37][..], 29usize, 45usize),
        (&[3, 50][..], 64, 256),
        (&[1, 70][..], 256, 64),
    ]
    .iter()
    .enumerate()
    {
        let mut xs = lead.to_vec();
        xs.push(inp);
        let s = 10 * i as u64;
        let (x, w, b) = (
            rand(s, &xs, -2.0, 2.0),
            rand(s + 1, &[out, inp], -0.5, 0.5),
            rand(s + 2, &[out], -1.0, 1.0),
        );
        let wh = w.to_dtype(DType::BF16).unwrap();
        for bias in [Some(&b), None] {
            let cpu = ops::matmul::linear(&x, &wh, bias).unwrap();
            let bias_dev = bias.map(|b| on(&dev, b));
            let y = ops::matmul::linear(&on(&dev, &x), &on(&dev, &wh), bias_dev.as_ref()).unwrap();
            assert!(!y.device().is_cpu() && y.dtype() == DType::F32);
            assert_eq!(y.shape(), cpu.shape());
            let what = format!("linear {xs:?} -> {out}, bias {}", bias.is_some());
            within_activation_rounding(&y, &cpu, &x, &wh, &what);
            // The input already rounded to bf16 on the device (no cast on cuBLAS): the same GEMM
            // of the same operands, so the same bits.
            let xb = on(&dev, &x).to_dtype(DType::BF16).unwrap();
            let of_bf16 = ops::matmul::linear(&xb, &on(&dev, &wh), bias_dev.as_ref()).unwrap();
            assert_eq!(of_bf16.shape(), y.shape());
            assert_eq!(of_bf16.to_vec_f32().unwrap(), y.to_vec_f32().unwrap(), "{what}: bf16 input");
        }
    }
    // A weight converted on the device gives the same bits as one converted on the host.
    let w = rand(5, &[16, 24], -1.0, 1.0);
    let a = on(&dev, &w).to_dtype(DType::BF16).unwrap();
    let host = on(&dev, &w.to_dtype(DType::BF16).unwrap());
    assert_eq!(bits_of(&a), bits_of(&host));
    // Mixed devices stay an error.
    let err = ops::matmul::linear(&rand(6, &[3, 24], -1.0, 1.0), &a, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different devices"), "{err}");
}

#[test]
fn bf16_linear_errors_cpu() {
    let (x, w) = (rand(1, &[4, 8], -1.0, 1.0), rand(2, &[5, 8], -1.0, 1.0));
    let wh = w.to_dtype(DType::BF16).unwrap();
    // A bf16 input needs a bf16 weight.
    let err = ops::matmul::linear(&x.to_dtype(DType::BF16).unwrap(), &w, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("linear") && err.contains("BF16"), "{err}");
    // A u32 weight is named as the weight's problem.
    let wu = Tensor::from_u32(vec![0; 40], &[5, 8]).unwrap();
    let err = ops::matmul::linear(&x, &wu, None).unwrap_err().to_string();
    assert!(
        err.contains("weight: f32 or bf16") && err.contains("U32"),
        "{err}"
    );
    // Backward through a bf16 weight: inference-only, at the op and on a training tape.
    let g = rand(3, &[4, 5], -1.0, 1.0);
    let err = ops::matmul::linear_backward_input(x.shape(), &wh, &g)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inference-only"), "{err}");
    let tape = Tape::new();
    let (xv, wv) = (tape.var(x.clone()), tape.constant(wh.clone()));
    let err = fdm::autograd::linear::linear(&tape, &xv, &wv, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inference-only"), "{err}");
    // On a no-grad tape (inference) it runs.
    let nt = Tape::no_grad();
    let y = fdm::autograd::linear::linear(&nt, &nt.constant(x), &nt.constant(wh), None).unwrap();
    assert_eq!(y.shape(), [4, 5]);
}

/// `add_layer_norm_to` and `attention_packed_to` with a bf16 output (what a bf16-weight Linear
/// reads without its cast): the f32 output of the same op rounded, bit for bit; other dtypes are
/// errors that name the op. `on` moves the inputs to the device under test (or leaves them on the
/// CPU).
fn bf16_outputs_match(on: &dyn Fn(&Tensor) -> Tensor, what: &str) {
    let (x, a) = (rand(40, &[2, 5, 48], -2.0, 2.0), rand(41, &[2, 5, 48], -1.0, 1.0));
    let (w, b) = (rand(42, &[48], 0.5, 1.5), rand(43, &[48], -0.5, 0.5));
    let (x, a, w, b) = (on(&x), on(&a), on(&w), on(&b));
    let (s32, y32) = ops::layernorm::add_layer_norm(&x, &a, &w, &b, 1e-5).unwrap();
    let (s16, y16) = ops::layernorm::add_layer_norm_to(&x, &a, &w, &b, 1e-5, DType::BF16).unwrap();
    assert_eq!(y16.dtype(), DType::BF16);
    assert_eq!(s16.to_vec_f32().unwrap(), s32.to_vec_f32().unwrap(), "{what}: add_layer_norm's sum");
    assert_eq!(bits_of(&y16), bits_of(&y32.to_dtype(DType::BF16).unwrap()), "{what}: add_layer_norm");
    let err = ops::layernorm::add_layer_norm_to(&x, &a, &w, &b, 1e-5, DType::U32).unwrap_err().to_string();
    assert!(err.contains("add_layer_norm"), "{err}");
    // 2 x 130 tokens, 3 heads of 64: on CUDA the keys split in ranges and merged, then converted.
    let qkv = on(&rand(44, &[2, 130, 3 * 3 * 64], -2.0, 2.0));
    for bf16 in [true, false] {
        let o32 = ops::attention::attention_packed(&qkv, 3, bf16).unwrap();
        let o16 = ops::attention::attention_packed_to(&qkv, 3, bf16, DType::BF16).unwrap();
        assert_eq!((o16.dtype(), o16.shape()), (DType::BF16, o32.shape()));
        assert_eq!(bits_of(&o16), bits_of(&o32.to_dtype(DType::BF16).unwrap()), "{what}: attention_packed (bf16 numerics {bf16})");
    }
    let err = ops::attention::attention_packed_to(&qkv, 3, true, DType::U32).unwrap_err().to_string();
    assert!(err.contains("attention"), "{err}");
}

#[test]
fn bf16_outputs_are_the_f32_outputs_rounded_cpu() {
    bf16_outputs_match(&|t| t.clone(), "cpu");
}

fn bf16_outputs_are_the_f32_outputs_rounded_on_the_device(dev: CudaDevice) {
    bf16_outputs_match(&|t| on(&dev, t), "device");
}
