//! `kernels/gemm_tc.cu` launched by its launchers, on the CPU emulator (`emu::*`, where the mma
//! instruction is the emulated twin) and on a real GPU (`cuda::*`, skipped without one, where the
//! tensor cores run it):
//! * one mma on a 16x16 x 16x8 integer problem, fragments placed by the PTX ISA formulas: exact,
//!   so any mistake in the fragment layout (the twin's or the hardware's reading of it) shows up;
//! * the tiled GEMM `C = bf16(A) B^T + bias`, both kernels (plain; pipelined: vector loads and
//!   double-buffered shared memory), against an f64 reference on the same bf16-rounded inputs,
//!   on odd shapes (partial tiles, K not a multiple of 16 or ending mid-slice) and on the transformer's shapes
//!   (tiny preset: 64 wide, MLP 256, vocab 256; paper preset: 512 wide, 512 -> 1536 / 2048 and
//!   2048 -> 512) at 64 rows so the emulator stays fast;
//! * NaN in an input propagates to exactly the outputs it feeds;
//! * the f32 <-> bf16 conversion kernels against `half::bf16` (ties to even, NaN, Inf, overflow).
//!
//! Tolerance of the GEMM: the products of two bf16 values are exact in f32 (8 x 8 significant
//! bits), so the only error is the f32 summation of K terms, at most about K * 2^-24 * sum |p|
//! (1.2e-4 * sum |p| for K = 2048) in any order; 1e-3 * (sum |p| + |bias|) + 1e-6 leaves room for
//! the tensor core's own accumulation order and alignment. That bound is loose enough to hide a
//! missing bf16 rounding of the activations (random-sign errors of 2^-9 partly cancel), so a
//! separate test multiplies by the identity, where the output must be exactly bf16(x).

mod common;

use common::backend::Backend;
use fdm::cuda::ops::gemm_tc::{bf16x2_selftest_launch, cast_launch, gemm_bf16_launch, linear_prep_launch, mma_selftest_launch, InputAct, TcKernel};
use fdm::cuda::ops::unary::unary_fwd_launch;
use fdm::params::unary::{UnaryOp, UnaryParams};
use fdm::testing::random_vec;
use half::bf16;

backend_tests!(
    one_mma_matches_the_fragment_layout,
    paired_bf16_conversion_rounds_like_half,
    gemm_odd_shapes_match_f64_reference,
    gemm_transformer_shapes_match_f64_reference,
    gemm_nan_propagates_to_its_row_and_column,
    gemm_rounds_activations_to_bf16,
    pipelined_gemm_odd_shapes_match_f64_reference,
    cast_kernels_round_like_half,
    linear_prep_casts_the_input_and_writes_the_bias_rows,
    linear_prep_gelu2_is_the_unary_kernel_then_the_cast
);

/// bf16 bit patterns packed two per 32-bit word (element 2i in the low half of word i), the
/// little-endian layout of a `u16` array on the device.
fn bf16_buf<B: Backend>(be: &B, bits: &[u16]) -> B::Buf {
    let words: Vec<u32> = bits
        .chunks(2)
        .map(|p| p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16)
        .collect();
    be.u32s(&words)
}

fn bf16_bits(v: &[f32]) -> Vec<u16> {
    v.iter().map(|&x| bf16::from_f32(x).to_bits()).collect()
}

fn bits_to_f32(v: &[u16]) -> Vec<f32> {
    v.iter().map(|&b| bf16::from_bits(b).to_f32()).collect()
}

fn one_mma_matches_the_fragment_layout<B: Backend>(be: &B) {
    // Small integers (exact in bf16, and every sum exact in f32), no symmetry between rows,
    // columns or k, so a swapped register or half-word changes the result.
    let a: Vec<f32> = (0..256)
        .map(|e| ((e / 16 * 3 + e % 16 * 5) % 11) as f32 - 5.0)
        .collect();
    let bt: Vec<f32> = (0..128)
        .map(|e| ((e / 16 * 7 + e % 16 * 2) % 9) as f32 - 4.0)
        .collect();
    let c: Vec<f32> = (0..128)
        .map(|e| (e / 8) as f32 * 0.5 - (e % 8) as f32)
        .collect();
    let (ab, bb, cb) = (
        bf16_buf(be, &bf16_bits(&a)),
        bf16_buf(be, &bf16_bits(&bt)),
        be.f32s(&c),
    );
    let d = be.f32s(&[f32::NAN; 128]);
    be.run(&mma_selftest_launch(
        be.ptr(&d),
        be.ptr(&ab),
        be.ptr(&bb),
        be.ptr(&cb),
    ));
    let got = be.get_f32(&d);
    for r in 0..16 {
        for n in 0..8 {
            let want = c[r * 8 + n] + (0..16).map(|k| a[r * 16 + k] * bt[n * 16 + k]).sum::<f32>();
            assert_eq!(got[r * 8 + n], want, "D[{r}][{n}]");
        }
    }
}

/// The tensor-core kernels' paired conversion (`fdm_bf16x2_bits`: one cvt.rn.bf16x2.f32 on a
/// GPU) against `half`'s round-to-nearest-even, element 2i in the low half: ties both ways,
/// subnormals, the largest finites and what rounds to infinity, infinities, zeros of both signs,
/// and random values of every magnitude. NaN only has to stay NaN (the instruction gives the
/// canonical NaN, the integer twin keeps the payload).
fn paired_bf16_conversion_rounds_like_half<B: Backend>(be: &B) {
    let mut x: Vec<f32> = vec![
        1.0 + 1.0 / 256.0, 1.0 + 3.0 / 256.0, -(1.0 + 1.0 / 256.0), 1.0 + 1.0 / 256.0 + 1e-7,
        f32::from_bits(0x0000_8000), f32::from_bits(0x0001_8000), f32::from_bits(0x007f_ffff), f32::MIN_POSITIVE,
        f32::MAX, -f32::MAX, f32::from_bits(0x7f7f_7fff), f32::from_bits(0x7f7f_8000),
        f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0,
    ];
    x.extend(random_vec(7, 4000, -1.0, 1.0).iter().enumerate().map(|(i, v)| v * 2f32.powi((i % 60) as i32 - 30)));
    let nan_at = x.len();
    x.extend([f32::NAN, 1.0]);
    let pairs = x.len() / 2;
    let (xb, y) = (be.f32s(&x), be.u32s(&vec![0u32; pairs]));
    be.run(&bf16x2_selftest_launch(be.ptr(&y), be.ptr(&xb), pairs as u32));
    let got = be.get_u32(&y);
    for (i, &word) in got.iter().enumerate() {
        let (lo, hi) = ((word & 0xffff) as u16, (word >> 16) as u16);
        for (e, bits) in [(2 * i, lo), (2 * i + 1, hi)] {
            if e == nan_at {
                assert!(bf16::from_bits(bits).is_nan(), "NaN must stay NaN, got {bits:#06x}");
                continue;
            }
            let want = bf16::from_f32(x[e]).to_bits();
            assert_eq!(bits, want, "element {e} ({:e}, bits {:#010x}): got {bits:#06x}, want {want:#06x}", x[e], x[e].to_bits());
        }
    }
}

/// Runs the GEMM on `x [m, k]` (f32) and `w [n, k]` (bf16 bits) with an optional bias and checks
/// it against the f64 sum of the bf16-rounded products (bound in the file header).
fn check_gemm<B: Backend>(be: &B, kernel: TcKernel, (m, n, k): (usize, usize, usize), seed: u64, with_bias: bool) {
    let x = random_vec(seed, m * k, -2.0, 2.0);
    let w = bf16_bits(&random_vec(seed + 1, n * k, -0.5, 0.5));
    let bias = random_vec(seed + 2, n, -1.0, 1.0);
    let (xb, wb, bb) = (be.f32s(&x), bf16_buf(be, &w), be.f32s(&bias));
    let y = be.f32s(&vec![f32::NAN; m * n]);
    let bias_ptr = if with_bias { be.ptr(&bb) } else { 0 };
    if kernel == TcKernel::Pipelined {
        assert!(TcKernel::pipelined_fits(be.ptr(&xb), be.ptr(&wb), k), "{m}x{k} -> {n}: operands unfit for the pipelined kernel");
    }
    be.run(&gemm_bf16_launch(
        kernel,
        be.ptr(&y),
        be.ptr(&xb),
        be.ptr(&wb),
        bias_ptr,
        m,
        n,
        k,
    ));
    let y = be.get_f32(&y);
    let (xr, wr) = (bits_to_f32(&bf16_bits(&x)), bits_to_f32(&w));
    for r in 0..m {
        for o in 0..n {
            let (mut sum, mut abs) = (0f64, 0f64);
            for i in 0..k {
                let p = xr[r * k + i] as f64 * wr[o * k + i] as f64;
                sum += p;
                abs += p.abs();
            }
            if with_bias {
                sum += bias[o] as f64;
                abs += (bias[o] as f64).abs();
            }
            let got = y[r * n + o] as f64;
            assert!(
                (got - sum).abs() <= 1e-3 * abs + 1e-6,
                "{kernel:?} {m}x{k} -> {n} (bias {with_bias}): y[{r}][{o}] = {got}, f64 reference {sum} (sum |p| {abs})"
            );
        }
    }
}

fn gemm_odd_shapes_match_f64_reference<B: Backend>(be: &B) {
    for (i, &shape) in [
        (37, 45, 29),
        (1, 8, 16),
        (130, 70, 100),
        (3, 1, 1),
        (65, 129, 33),
    ]
    .iter()
    .enumerate()
    {
        check_gemm(be, TcKernel::Plain, shape, 10 * i as u64, i % 2 == 0);
        check_gemm(be, TcKernel::Plain, shape, 10 * i as u64 + 5, i % 2 == 1);
    }
}

/// The pipelined kernel on partial row and column tiles and on k that ends mid-slice (k % 32 of
/// 8, 24 and 8), where whole vectors are zero-filled.
fn pipelined_gemm_odd_shapes_match_f64_reference<B: Backend>(be: &B) {
    for (i, &shape) in [(37, 45, 24), (1, 8, 8), (130, 70, 104), (65, 129, 40), (3, 1, 16)].iter().enumerate() {
        check_gemm(be, TcKernel::Pipelined, shape, 50 + 10 * i as u64, i % 2 == 0);
    }
    // The kernel choice: pipelined only for k % 8 == 0 and 16-byte aligned operands.
    assert_eq!(TcKernel::for_operands(0x1000, 0x2000, 512), TcKernel::Pipelined);
    assert_eq!(TcKernel::for_operands(0x1004, 0x2000, 512), TcKernel::Plain);
    assert_eq!(TcKernel::for_operands(0x1000, 0x2008, 512), TcKernel::Plain);
    assert_eq!(TcKernel::for_operands(0x1000, 0x2000, 20), TcKernel::Plain);
}

fn gemm_transformer_shapes_match_f64_reference<B: Backend>(be: &B) {
    // (rows, out, in): tiny q/k/v/proj 64 -> 64, MLP 64 -> 256 -> 64, emb_proj 64 -> 64,
    // to_logits 64 -> 256; paper 512 -> 1536 (q, k, v side by side), 512 -> 2048 -> 512.
    let shapes = [
        (64, 64, 64),
        (64, 256, 64),
        (64, 64, 256),
        (64, 1536, 512),
        (64, 2048, 512),
        (64, 512, 2048),
    ];
    for (i, &shape) in shapes.iter().enumerate() {
        for kernel in [TcKernel::Plain, TcKernel::Pipelined] {
            check_gemm(be, kernel, shape, 100 + i as u64, true);
        }
    }
}

fn gemm_nan_propagates_to_its_row_and_column<B: Backend>(be: &B) {
    // k 20 (plain: the NaN in the zero-padded last slice) and 24 (pipelined: k % 8 == 0).
    for (kernel, k) in [(TcKernel::Plain, 20), (TcKernel::Pipelined, 24)] {
        let (m, n) = (40, 24);
        let mut x = random_vec(7, m * k, -1.0, 1.0);
        let mut w = bf16_bits(&random_vec(8, n * k, -1.0, 1.0));
        x[5 * k + 3] = f32::NAN; // row 5 of the output
        w[17 * k + k - 1] = bf16::NAN.to_bits(); // column 17, at the last k
        let (xb, wb) = (be.f32s(&x), bf16_buf(be, &w));
        let y = be.f32s(&vec![0.0; m * n]);
        be.run(&gemm_bf16_launch(kernel, be.ptr(&y), be.ptr(&xb), be.ptr(&wb), 0, m, n, k));
        let y = be.get_f32(&y);
        for r in 0..m {
            for o in 0..n {
                assert_eq!(y[r * n + o].is_nan(), r == 5 || o == 17, "{kernel:?}: y[{r}][{o}] = {}", y[r * n + o]);
            }
        }
    }
}

fn gemm_rounds_activations_to_bf16<B: Backend>(be: &B) {
    // W = I (K = N = 40): y[r][o] = bf16(x[r][o]) * 1 + zeros, exact in f32 whatever the order.
    let (m, n) = (70, 40);
    let x = random_vec(9, m * n, -3.0, 3.0);
    let eye: Vec<f32> = (0..n * n)
        .map(|e| if e / n == e % n { 1.0 } else { 0.0 })
        .collect();
    let (xb, wb) = (be.f32s(&x), bf16_buf(be, &bf16_bits(&eye)));
    for kernel in [TcKernel::Plain, TcKernel::Pipelined] {
        let y = be.f32s(&vec![f32::NAN; m * n]);
        be.run(&gemm_bf16_launch(kernel, be.ptr(&y), be.ptr(&xb), be.ptr(&wb), 0, m, n, n));
        assert_eq!(be.get_f32(&y), bits_to_f32(&bf16_bits(&x)), "{kernel:?}: bf16(x) I");
    }
}

fn cast_kernels_round_like_half<B: Backend>(be: &B) {
    // Ties (exactly half an ulp: to even, both directions), just above a tie, NaN of both signs,
    // infinities, overflow to Inf, the largest finite bf16, subnormals, signed zeros, and random.
    let mut x: Vec<f32> = vec![
        f32::from_bits(0x3f80_8000), // 1 + 2^-8: tie, rounds down to even 1.0
        f32::from_bits(0x3f81_8000), // tie, rounds up to even
        f32::from_bits(0xbf81_8000),
        f32::from_bits(0x3f80_8001), // just above the tie: up
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::from_bits(0x7f7f_7fff), // rounds down to the largest finite bf16
        f32::from_bits(0x0000_0001),
        f32::from_bits(0x0000_8000),
        f32::from_bits(0x8001_8000),
        0.0,
        -0.0,
    ];
    x.extend(random_vec(3, 1001, -1e4, 1e4));
    let xb = be.f32s(&x);
    let packed = be.u32s(&vec![0; x.len().div_ceil(2)]);
    be.run(&cast_launch(true, be.ptr(&packed), be.ptr(&xb), x.len()));
    let words = be.get_u32(&packed);
    let got: Vec<u16> = (0..x.len())
        .map(|i| (words[i / 2] >> (16 * (i % 2))) as u16)
        .collect();
    for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
        let want = bf16::from_f32(v).to_bits();
        assert!(
            g == want || (v.is_nan() && bf16::from_bits(g).is_nan()),
            "x[{i}] = {v:e}: {g:#06x} vs half {want:#06x}"
        );
    }
    // Back to f32: exact.
    let back = be.f32s(&vec![0.0; x.len()]);
    be.run(&cast_launch(false, be.ptr(&back), be.ptr(&packed), x.len()));
    let back = be.get_f32(&back);
    for (i, (&b, &g)) in back.iter().zip(&got).enumerate() {
        let want = bf16::from_bits(g).to_f32();
        assert!(
            b.to_bits() == want.to_bits() || (b.is_nan() && want.is_nan()),
            "element {i}: {b} vs {want}"
        );
    }
}

/// The NVRTC output really uses the bf16 tensor-core instruction (compile tier; SKIP without NVRTC).
#[test]
fn gemm_tc_ptx_uses_the_bf16_mma() {
    if !fdm::cuda::module::nvrtc_available() {
        assert!(
            std::env::var("FDM_REQUIRE_NVRTC").map_or(true, |v| v != "1"),
            "FDM_REQUIRE_NVRTC=1 but no NVRTC"
        );
        println!("gemm_tc_ptx_uses_the_bf16_mma: SKIP (no NVRTC)");
        return;
    }
    let src = fdm::cuda::module::kernel_source("gemm_tc").unwrap();
    for arch in ["compute_80", "compute_90"] {
        let out = fdm::cuda::module::compile("gemm_tc", src, arch, &[]).unwrap();
        assert!(
            out.ptx
                .contains("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"),
            "{arch}: no bf16 mma in the PTX"
        );
    }
}

fn linear_prep_casts_the_input_and_writes_the_bias_rows<B: Backend>(be: &B) {
    // x [7, 33] (more inputs than outputs) and x [3, 5] with y [3, 13] (more outputs than
    // inputs): both loop bounds of the one grid-stride loop. Without a bias y stays untouched.
    for (m, inp, out) in [(7usize, 33usize, 13usize), (3, 5, 13)] {
        for with_bias in [true, false] {
            let x = random_vec(11, m * inp, -3.0, 3.0);
            let bias = random_vec(12, out, -1.0, 1.0);
            let (xb_dev, bias_dev) = (be.f32s(&x), be.f32s(&bias));
            let packed = be.u32s(&vec![0; (m * inp).div_ceil(2)]);
            let y = be.f32s(&vec![f32::NAN; m * out]);
            let bias_ptr = if with_bias { be.ptr(&bias_dev) } else { 0 };
            be.run(&linear_prep_launch(be.ptr(&packed), be.ptr(&y), be.ptr(&xb_dev), bias_ptr, m * inp, m * out, out, InputAct::Identity));
            let words = be.get_u32(&packed);
            for (i, &v) in x.iter().enumerate() {
                let got = (words[i / 2] >> (16 * (i % 2))) as u16;
                assert_eq!(got, bf16::from_f32(v).to_bits(), "x[{i}] = {v} ({m} x {inp})");
            }
            let y = be.get_f32(&y);
            for (i, &g) in y.iter().enumerate() {
                if with_bias {
                    assert_eq!(g, bias[i % out], "y[{i}] ({m} x {out})");
                } else {
                    assert!(g.is_nan(), "y[{i}] was written without a bias");
                }
            }
        }
    }
}

fn linear_prep_gelu2_is_the_unary_kernel_then_the_cast<B: Backend>(be: &B) {
    // The fused activation must give the bits of the unary kernel's GELU2 rounded to bf16.
    let n = 4099;
    let x = random_vec(21, n, -8.0, 8.0);
    let xb = be.f32s(&x);
    let act = be.f32s(&vec![f32::NAN; n]);
    be.run(&unary_fwd_launch(be.ptr(&act), be.ptr(&xb), &UnaryParams::new(UnaryOp::Gelu2, n, 0.0, 0.0)));
    let act = be.get_f32(&act);
    let packed = be.u32s(&vec![0; n.div_ceil(2)]);
    be.run(&linear_prep_launch(be.ptr(&packed), 0, be.ptr(&xb), 0, n, 0, 1, InputAct::Gelu2));
    let words = be.get_u32(&packed);
    for (i, &a) in act.iter().enumerate() {
        let got = (words[i / 2] >> (16 * (i % 2))) as u16;
        assert_eq!(got, bf16::from_f32(a).to_bits(), "gelu2(x[{i}] = {})", x[i]);
    }
    // From x[1] (not 16-byte aligned: the element-wise path) into the second word (8-byte
    // aligned only when the first is 16-byte aligned): the same bits as above, shifted.
    let shifted = be.u32s(&vec![0; n.div_ceil(2) + 1]);
    be.run(&linear_prep_launch(be.ptr(&shifted) + 4, 0, be.ptr(&xb) + 4, 0, n - 1, 0, 1, InputAct::Gelu2));
    let words = be.get_u32(&shifted);
    for (i, &a) in act.iter().enumerate().skip(1) {
        let got = (words[1 + (i - 1) / 2] >> (16 * ((i - 1) % 2))) as u16;
        assert_eq!(got, bf16::from_f32(a).to_bits(), "unaligned: gelu2(x[{i}] = {})", x[i]);
    }
}
