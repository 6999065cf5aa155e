//! The bf16-input attention forward (`attention_fwd_fa_bf16[_ob]` in `kernels/attention_tc.cu`,
//! launched by `cuda::ops::attention_fa`), on the CPU emulator (`emu::*`: cp.async, ldmatrix and
//! mma run as their emulated twins) and a real GPU (`cuda::*`, skipped without one):
//! * on q, k, v whose values are bf16 already, exactly the bits of the 8-warp kernel
//!   (`AttentionKernel::TensorCoreBf16Wide`, which stages f32 inputs and rounds them: a no-op on
//!   such values), o and log-sum-exp, f32 and bf16 outputs, dense and fused-projection layouts,
//!   partial query and key tiles, the paper model's shape;
//! * the same o within `TOL_TC_OUT` of the f64 reference on the rounded inputs (the bound of
//!   `cuda_emu_attention_tc.rs`);
//! * through the device op (`TcPlan::Bf16Inputs`: the f32 inputs cast to bf16, then the kernel):
//!   the same bits as `TcPlan::Wide`, and a clear error for head dim 32 and for misaligned inputs.

mod common;

use common::backend::Backend;
use common::reference::{attention_row_ref, fuse_qkv_rows};
use fdm::cuda::ops::attention::{attention_fwd_bf16_out_launch, attention_fwd_kernel_launch, attention_fwd_tc_plan_to, AttentionKernel, AttentionParams, TcPlan};
use fdm::cuda::ops::attention_fa::{attention_fa_launch, check_fa_inputs};
use fdm::cuda::{CudaDevice, CudaStorage};
use fdm::dtype::DType;
use fdm::storage::CpuStorage;
use fdm::testing::{assert_close, random_vec, TOL_CUDA_F32};

backend_tests!(fa_kernel_gives_the_wide_kernels_bits, fa_kernel_matches_the_reference_at_the_model_shape);

// The device op on the emulated device and on a GPU (the macros above name their modules `emu`
// and `cuda` already).
#[test]
fn bf16_inputs_plan_gives_the_wide_plans_bits_emu() {
    if !fdm::testing::emulator_or_skip("bf16_inputs_plan_gives_the_wide_plans_bits_emu") {
        return;
    }
    bf16_inputs_plan_gives_the_wide_plans_bits(CudaDevice::emulated());
}

#[test]
fn bf16_inputs_plan_gives_the_wide_plans_bits_cuda() {
    if let Some(dev) = fdm::testing::cuda_device_or_skip("bf16_inputs_plan_gives_the_wide_plans_bits_cuda") {
        bf16_inputs_plan_gives_the_wide_plans_bits(dev);
    }
}

/// Worst-case effect of the bf16 probabilities on an output with |v| <= 1 (as in
/// `cuda_emu_attention_tc.rs`).
const TOL_TC_OUT: (f32, f32) = (1.0 / 512.0 + TOL_CUDA_F32.0, TOL_CUDA_F32.1);

/// Values rounded to bf16 (nearest even): as f32 (exactly representable) and as bf16 bits in
/// 32-bit words of two (element 2i in the low half), the kernel's input layout.
fn rounded(seed: u64, n: usize, spread: f32) -> (Vec<f32>, Vec<u32>) {
    let bits: Vec<u16> = random_vec(seed, n, -spread, spread).iter().map(|&v| half::bf16::from_f32(v).to_bits()).collect();
    let words = bits.chunks(2).map(|p| p[0] as u32 | (*p.get(1).unwrap_or(&0) as u32) << 16).collect();
    (bits.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect(), words)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// o and lse of the wide kernel (f32 inputs `f`) and of the bf16-input kernel (bf16 words `w`),
/// both laid out as `p` says with q, k, v at element offsets `offs` of one buffer each; with
/// `bf16_out` the o of both is the bf16 entry's (as 32-bit words of two).
fn run_both<B: Backend>(be: &B, p: &AttentionParams, (f, w): (&[f32], &[u32]), offs: [usize; 3], bf16_out: bool) -> [(Vec<u32>, Vec<u32>); 2] {
    let rows = (p.batch * p.len) as usize;
    let (width, lse_n) = (p.heads as usize * 64, (p.batch * p.heads * p.len) as usize);
    let (fb, wb) = (be.f32s(f), be.u32s(w));
    let f_ptrs = offs.map(|o| be.ptr(&fb) + 4 * o as u64);
    let w_ptrs = offs.map(|o| be.ptr(&wb) + 2 * o as u64);
    let out = |launch: &dyn Fn(u64, u64) -> fdm::cuda::launch::Launch| {
        let (o, lse) = (be.u32s(&vec![u32::MAX; rows * width]), be.f32s(&vec![f32::NAN; lse_n]));
        be.run(&launch(be.ptr(&o), be.ptr(&lse)));
        let o = be.get_u32(&o);
        (if bf16_out { o[..rows * width / 2].to_vec() } else { o }, bits(&be.get_f32(&lse)))
    };
    let wide = out(&|o, lse| {
        let which = AttentionKernel::TensorCoreBf16Wide;
        if bf16_out {
            attention_fwd_bf16_out_launch(which, 64, o, lse, f_ptrs, p).expect("a bf16-output entry")
        } else {
            attention_fwd_kernel_launch(which, 64, o, lse, f_ptrs[0], f_ptrs[1], f_ptrs[2], p)
        }
    });
    let fa = out(&|o, lse| attention_fa_launch(o, bf16_out, lse, w_ptrs, p));
    [wide, fa]
}

fn fa_kernel_gives_the_wide_kernels_bits<B: Backend>(be: &B) {
    // Dense q, k, v (three blocks of one buffer) with partial tiles of queries and keys, and the
    // fused projection's layout (rows of q | k | v).
    for (seed, (b, l, h)) in [(31, (2, 190, 2)), (32, (1, 64, 1)), (33, (1, 333, 3))] {
        let n = b * l * h * 64;
        let (f, w) = rounded(seed, 3 * n, 2.0);
        let p = AttentionParams::dense_dim(b, l, h, 64);
        for bf16_out in [false, true] {
            let [wide, fa] = run_both(be, &p, (&f, &w), [0, n, 2 * n], bf16_out);
            assert_eq!(fa.0, wide.0, "dense {b} x {l} x {h}, bf16 out {bf16_out}: o");
            assert_eq!(fa.1, wide.1, "dense {b} x {l} x {h}, bf16 out {bf16_out}: lse");
        }
        let (q, k, v) = (&f[..n], &f[n..2 * n], &f[2 * n..]);
        let fused = fuse_qkv_rows(q, k, v, b * l, h * 64);
        let fused_words: Vec<u32> = fused.chunks(2).map(|p| (p[0].to_bits() >> 16) | (p[1].to_bits() & 0xffff_0000)).collect();
        let p = AttentionParams::packed_qkv(b, l, h, 64);
        let [wide, fa] = run_both(be, &p, (&fused, &fused_words), [0, h * 64, 2 * h * 64], true);
        assert_eq!(fa, wide, "fused projection {b} x {l} x {h}");
    }
}

fn fa_kernel_matches_the_reference_at_the_model_shape<B: Backend>(be: &B) {
    // 8 heads x 1024 tokens x 64, rows covering every 128-query block and both row tiles of
    // every warp.
    let (b, l, h) = (1, 1024, 8);
    let n = l * h * 64;
    let (f, w) = rounded(41, 3 * n, 1.0);
    let p = AttentionParams::dense_dim(b, l, h, 64);
    let [wide, fa] = run_both(be, &p, (&f, &w), [0, n, 2 * n], false);
    assert_eq!(fa, wide, "model shape: the wide kernel's bits");
    let o: Vec<f32> = fa.0.iter().map(|&x| f32::from_bits(x)).collect();
    let (q, k, v) = (&f[..n], &f[n..2 * n], &f[2 * n..]);
    for hi in 0..h {
        for qi in (0..l).step_by(37).chain([1023]) {
            let (want, want_lse) = attention_row_ref(q, k, v, l, h, 64, 0, hi, qi);
            let at = qi * h * 64 + hi * 64;
            assert_close(&o[at..at + 64], &want, TOL_TC_OUT, &format!("h{hi} query {qi}"));
            assert_close(&[f32::from_bits(fa.1[hi * l + qi])], &[want_lse], TOL_CUDA_F32, &format!("h{hi} query {qi} lse"));
        }
    }
}

fn up(dev: &CudaDevice, v: &[f32]) -> CudaStorage {
    dev.upload(&CpuStorage::F32(v.to_vec())).unwrap()
}

fn bf16_inputs_plan_gives_the_wide_plans_bits(dev: CudaDevice) {
    // f32 inputs that are not bf16 values: the plan's cast rounds them as the wide kernel's
    // staging does.
    let (b, l, h) = (2, 150, 2);
    let n = b * l * h * 64;
    let [q, k, v] = [0, 1, 2].map(|i| up(&dev, &random_vec(50 + i, n, -2.0, 2.0)));
    for dtype in [DType::F32, DType::BF16] {
        let run = |plan| attention_fwd_tc_plan_to(&q, &k, &v, (b, l, h, 64), plan, dtype).unwrap().download().unwrap().to_f32_vec();
        assert_eq!(bits(&run(TcPlan::Bf16Inputs)), bits(&run(TcPlan::Wide)), "o in {dtype:?}");
    }
    let small = [0, 1, 2].map(|i| up(&dev, &random_vec(60 + i, 2 * 40 * 32, -1.0, 1.0)));
    let err = attention_fwd_tc_plan_to(&small[0], &small[1], &small[2], (1, 40, 2, 32), TcPlan::Bf16Inputs, DType::F32).unwrap_err();
    assert!(err.to_string().contains("head dim 32"), "{err}");
}

#[test]
fn misaligned_bf16_inputs_are_refused_cpu() {
    let p = AttentionParams::dense_dim(1, 10, 1, 64);
    assert!(check_fa_inputs([0, 1024, 2048], &p).is_ok());
    let err = check_fa_inputs([0, 1026, 2048], &p).unwrap_err().to_string();
    assert!(err.contains("16-byte aligned"), "{err}");
    let odd = AttentionParams { row_stride: 68, ..p };
    assert!(check_fa_inputs([0, 1024, 2048], &odd).is_err(), "a row stride of 68 elements is not whole 16-byte chunks");
}
