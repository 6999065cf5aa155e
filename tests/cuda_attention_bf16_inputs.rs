//! `FDM_ATTENTION_BF16_INPUTS=1` (the opt-in bf16-input attention kernel) through the
//! Tensor-level fused attention that `--precision bf16` inference runs: where the 8-warp kernel
//! would run (a grid of 128 blocks of 128 queries), the switch picks `TcPlan::Bf16Inputs`, and
//! its output, f32 or bf16, equals the CPU's bf16 attention within the tensor-core bound of
//! `cuda_emu_attention_tc.rs`. The switch is read once per process, so this file is its own
//! test binary. `emu::*` on the emulated device, `cuda::*` on a GPU.

mod common;

use common::device::{on, rand};
use fdm::cuda::ops::attention::TcPlan;
use fdm::cuda::ops::attention_fa::{bf16_inputs_requested, BF16_INPUTS_ENV};
use fdm::cuda::CudaDevice;
use fdm::dtype::DType;
use fdm::ops::attention::attention_packed_to;
use fdm::testing::{assert_close, TOL_CUDA_F32};

device_tests!(bf16_inputs_switch_runs_the_fused_attention_like_the_cpu);

fn bf16_inputs_switch_runs_the_fused_attention_like_the_cpu(dev: CudaDevice) {
    std::env::set_var(BF16_INPUTS_ENV, "1");
    assert!(bf16_inputs_requested(), "{BF16_INPUTS_ENV}=1 must turn the bf16-input kernel on");
    // 2 x 512 tokens x 16 heads of 64: 4 x 16 x 2 = 128 blocks of 128 queries.
    let (b, l, heads) = (2, 512, 16);
    assert_eq!(TcPlan::for_shape(b, l, heads, 64), TcPlan::Bf16Inputs);
    assert_ne!(TcPlan::for_shape(b, l, heads / 2, 64), TcPlan::Bf16Inputs, "a grid too small for 128-query blocks keeps its plan");
    assert_ne!(TcPlan::for_shape(b, l, 2 * heads, 32), TcPlan::Bf16Inputs, "head dim 32 has no bf16-input kernel");
    let qkv = rand(90, &[b, l, 3 * heads * 64], -1.0, 1.0);
    // The bf16 probabilities' bound with |v| <= 1 (see cuda_emu_attention_tc.rs).
    let tol = (1.0 / 512.0 + TOL_CUDA_F32.0, TOL_CUDA_F32.1);
    for dtype in [DType::F32, DType::BF16] {
        let want = attention_packed_to(&qkv, heads, true, dtype).unwrap();
        let got = attention_packed_to(&on(&dev, &qkv), heads, true, dtype).unwrap();
        assert_eq!(got.dtype(), dtype);
        // A bf16 output adds one rounding (at most 2^-9 relative) on each side.
        let tol = if dtype == DType::BF16 { (tol.0, tol.1 + 2.0 / 512.0) } else { tol };
        assert_close(&got.to_vec_f32().unwrap(), &want.to_vec_f32().unwrap(), tol, &format!("fused attention, o in {dtype:?}"));
    }
}
