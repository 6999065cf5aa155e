//! Launchers for the bf16-input attention forward of `kernels/attention_tc.cu`
//! (`attention_fwd_fa_bf16[_ob]`, head dim 64, spec §3.2): q, k and v already rounded to bf16 in
//! device memory, staged by cp.async and read with ldmatrix, 4 warps of 32 queries per block.
//! The same bits as the 8-warp kernel (`AttentionKernel::TensorCoreBf16Wide`) on the same bf16
//! values, with nothing converted while staging.
//!
//! `fa_forward` serves `TcPlan::Bf16Inputs` (opt-in, `FDM_ATTENTION_BF16_INPUTS=1`, until timed
//! on a GPU): it rounds the f32 q, k, v to bf16 in one cast (one for the fused projection, whose
//! three column blocks are one buffer) and runs the kernel.

use super::attention::AttentionParams;
use super::gemm_tc::cast_launch;
use crate::cuda::launch::{device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "attention_tc";
/// Queries per block (4 warps of 32) and threads per block.
pub const FA_QUERIES_PER_BLOCK: usize = 128;
const FA_THREADS: u32 = 128;
/// The only head dim with a bf16-input kernel (the paper model's).
pub const FA_HEAD_DIM: usize = 64;

/// Set to `1` to run the paper model's bf16 attention on the bf16-input kernel where the 8-warp
/// kernel would run (`TcPlan::Bf16Inputs`); read once per process.
pub const BF16_INPUTS_ENV: &str = "FDM_ATTENTION_BF16_INPUTS";

/// Whether `FDM_ATTENTION_BF16_INPUTS=1` asks for the bf16-input kernel.
pub fn bf16_inputs_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(BF16_INPUTS_ENV).is_ok_and(|v| v == "1"))
}

/// The launch of the bf16-input kernel: `qkv` the device addresses of bf16 q, k, v laid out as
/// `p` says (strides in elements), `o` f32 or, with `bf16_out`, bf16 pairs in 32-bit words
/// (dense as the f32 o would be); `lse` may be 0. Grid (ceil(L / 128), heads, batch).
pub fn attention_fa_launch(o: u64, bf16_out: bool, lse: u64, qkv: [u64; 3], p: &AttentionParams) -> Launch {
    let [q, k, v] = qkv;
    Launch {
        module: MODULE,
        kernel: if bf16_out { "attention_fwd_fa_bf16_ob" } else { "attention_fwd_fa_bf16" },
        cfg: LaunchCfg {
            grid: ((p.len as usize).div_ceil(FA_QUERIES_PER_BLOCK).max(1) as u32, p.heads, p.batch),
            block: (FA_THREADS, 1, 1),
            smem_bytes: 0,
        },
        args: vec![KArg::Ptr(o), KArg::Ptr(lse), KArg::Ptr(q), KArg::Ptr(k), KArg::Ptr(v), KArg::pod(p)],
    }
}

/// What the kernel's 16-byte copies need of bf16 inputs at `qkv`: 16-byte aligned addresses and
/// strides that are multiples of 8 elements (dense tensors and the fused projection of head
/// dim 64 always are).
pub fn check_fa_inputs(qkv: [u64; 3], p: &AttentionParams) -> Result<()> {
    if qkv.iter().any(|a| !a.is_multiple_of(16)) || !p.row_stride.is_multiple_of(8) || !p.batch_stride.is_multiple_of(8) {
        return Err(Error::msg(format!(
            "attention (bf16 inputs): q, k, v must be 16-byte aligned with strides in multiples of 8 elements (row {}, batch {})",
            p.row_stride, p.batch_stride
        )));
    }
    Ok(())
}

/// The bf16-input forward of the f32 q, k, v at `qkv` (laid out as `p` says, head dim 64): q, k
/// and v rounded to bf16 (nearest even, as the other tensor-core kernels stage them), then the
/// kernel, into a new dense o of `o_dtype` (f32 or bf16).
pub fn fa_forward(dev: &CudaDevice, qkv: [u64; 3], p: &AttentionParams, o_dtype: DType) -> Result<CudaStorage> {
    let bf16_out = match o_dtype {
        DType::F32 => false,
        DType::BF16 => true,
        other => return Err(Error::DType { op: "attention (output: f32 or bf16)", dtype: other }),
    };
    if p.batch == 0 || p.len == 0 || p.heads == 0 {
        return Err(Error::shape("attention (bf16 inputs)", format!("batch {}, length {}, heads {}", p.batch, p.len, p.heads)));
    }
    let (inputs, ptrs) = rounded_inputs(dev, qkv, p)?;
    check_fa_inputs(ptrs, p)?;
    let width = p.heads as usize * FA_HEAD_DIM;
    let o = dev.alloc(o_dtype, p.batch as usize * p.len as usize * width)?;
    run_on_device(dev, &attention_fa_launch(device_ptr(&o, 0), bf16_out, 0, ptrs, p))?;
    drop(inputs);
    Ok(o)
}

/// bf16 copies of the f32 q, k, v at `qkv`, and their addresses: one cast over the fused
/// projection where k and v are the column blocks right after q in rows of 3 x heads x 64
/// (`AttentionParams::packed_qkv`), otherwise one cast per tensor of every element from its
/// first to its last.
fn rounded_inputs(dev: &CudaDevice, qkv: [u64; 3], p: &AttentionParams) -> Result<(Vec<CudaStorage>, [u64; 3])> {
    let width = p.heads as usize * FA_HEAD_DIM;
    let block = (width * 4) as u64;
    let span = (p.batch as usize - 1) * p.batch_stride as usize + (p.len as usize - 1) * p.row_stride as usize + width;
    let [q, k, v] = qkv;
    let fused = p.row_stride as usize == 3 * width && k == q + block && v == q + 2 * block;
    if fused {
        let n = span + 2 * width;
        let y = cast_copy(dev, q, n)?;
        let base = device_ptr(&y, 0);
        let half = (width * 2) as u64;
        return Ok((vec![y], [base, base + half, base + 2 * half]));
    }
    let copies = [q, k, v].map(|x| cast_copy(dev, x, span));
    let [qb, kb, vb] = copies;
    let (qb, kb, vb) = (qb?, kb?, vb?);
    let ptrs = [device_ptr(&qb, 0), device_ptr(&kb, 0), device_ptr(&vb, 0)];
    Ok((vec![qb, kb, vb], ptrs))
}

/// `n` f32 values at device address `x` rounded to a new bf16 buffer.
fn cast_copy(dev: &CudaDevice, x: u64, n: usize) -> Result<CudaStorage> {
    u32_arg("attention (bf16 inputs)", n)?;
    let y = dev.alloc(DType::BF16, n)?;
    run_on_device(dev, &cast_launch(true, device_ptr(&y, 0), x, n))?;
    Ok(y)
}
