//! Launchers for `kernels/attention.cu`: multi-head attention forward (spec §3.2, head dim 64 or
//! the tiny preset's 32, no mask) in one pass over the keys, reading q, k, v straight from the [B, L, heads * 64] layout of
//! the query/key/value Linear outputs and writing o in the same layout (+ the log-sum-exp per row).

use super::attention_fa::{bf16_inputs_requested, fa_forward, FA_HEAD_DIM};
use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "attention";
/// The paper model's head dim (512 / 8 heads), the default of the launchers.
pub const HEAD_DIM: usize = 64;
/// Head dims with a kernel: 64 (`attention_fwd_f32`) and 32 (`attention_fwd_d32_f32`, the tiny
/// preset's 64 / 2 heads).
pub const SUPPORTED_HEAD_DIMS: [usize; 2] = [64, 32];
const QUERIES_PER_BLOCK: usize = 64;
const THREADS: u32 = 64;
/// Threads per block of the split-keys kernels (64 queries x 4 key groups).
const SPLIT_THREADS: u32 = 256;
/// The tensor-core kernels' module and block (4 warps of 16 queries).
const TC_MODULE: &str = "attention_tc";
const TC_THREADS: u32 = 128;

/// Same layout as `struct AttentionParams` in kernels/attention.cu.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct AttentionParams {
    pub batch: u32,
    pub len: u32,
    pub heads: u32,
    /// Elements between consecutive tokens (heads * 64 for a dense [B, L, heads * 64]).
    pub row_stride: u32,
    /// Elements between consecutive batch items (len * row_stride when dense).
    pub batch_stride: u32,
    /// The same two strides of the output `o` (the forward kernels only; the backward's tensors
    /// are all dense alike). They differ from q's where q, k and v are column blocks of one fused
    /// projection (`packed_qkv`).
    pub o_row_stride: u32,
    pub o_batch_stride: u32,
    /// Multiplier of q.k (1 / sqrt(64) in the model).
    pub scale: f32,
}

impl AttentionParams {
    /// Dense [batch, len, heads * 64] tensors, scale 1 / sqrt(64).
    pub fn dense(batch: usize, len: usize, heads: usize) -> Self {
        Self::dense_dim(batch, len, heads, HEAD_DIM)
    }
    /// Dense [batch, len, heads * head_dim] tensors, scale 1 / sqrt(head_dim).
    pub fn dense_dim(batch: usize, len: usize, heads: usize, head_dim: usize) -> Self {
        let row = heads * head_dim;
        AttentionParams {
            batch: batch as u32,
            len: len as u32,
            heads: heads as u32,
            row_stride: row as u32,
            batch_stride: (len * row) as u32,
            o_row_stride: row as u32,
            o_batch_stride: (len * row) as u32,
            scale: 1.0 / (head_dim as f32).sqrt(),
        }
    }
    /// q, k and v as the three column blocks of one [batch, len, 3 * heads * head_dim] tensor
    /// (the fused query/key/value projection), o dense [batch, len, heads * head_dim].
    pub fn packed_qkv(batch: usize, len: usize, heads: usize, head_dim: usize) -> Self {
        let row = 3 * heads * head_dim;
        AttentionParams { row_stride: row as u32, batch_stride: (len * row) as u32, ..Self::dense_dim(batch, len, heads, head_dim) }
    }
}

/// `lse` may be 0 (not wanted). Grid: (query tiles, heads, batch). Head dim 64.
pub fn attention_fwd_launch(
    o: u64,
    lse: u64,
    q: u64,
    k: u64,
    v: u64,
    p: &AttentionParams,
) -> Launch {
    attention_fwd_dim_launch(HEAD_DIM, o, lse, q, k, v, p)
}

/// Which forward kernel of `kernels/attention.cu` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKernel {
    /// `attention_fwd[_d32]_f32`: one thread per query, 64 threads per block (the reference).
    PerQuery,
    /// `attention_fwd_split[_d32]_f32`: 4 threads per query over a quarter of the keys each,
    /// merged at the end, 256 threads per block (the default: 4x the warps per multiprocessor).
    SplitKeys,
    /// `attention_fwd_tc[_d32]_bf16` (kernels/attention_tc.cu): q, k, v and the probabilities
    /// rounded to bf16 for the tensor cores, f32 softmax and sums; 128 threads per block. Another
    /// function than the f32 kernels (the rounding), so only `attention_fwd_bf16` chooses it.
    TensorCoreBf16,
    /// `attention_fwd_tc_kg2[_d32]_bf16`: as `TensorCoreBf16` with 256 threads per block in two
    /// key groups (even and odd 64-key tiles) merged at the end inside the block: twice the warps
    /// per multiprocessor where the grid is about one block per multiprocessor, with no second
    /// kernel. Not yet timed on a GPU, so no launcher picks it by default.
    TensorCoreBf16KeyGroups,
    /// `attention_fwd_tc_w8[_d32]_bf16`: as `TensorCoreBf16` with 8 warps and 128 queries per
    /// block (256 threads): each K/V tile is staged once for twice the queries. For grids with
    /// enough blocks (the paper model from batch 2), where it is the default (`TcPlan::choose`).
    TensorCoreBf16Wide,
    /// `attention_fwd_tc_split[_d32]_bf16`: as `TensorCoreBf16` with the keys in this many ranges
    /// (2 or more), each range's result into partials that `attention_tc_merge` combines; grid z
    /// is batch x ranges, and `o`, `lse` of the launch are the partials.
    TensorCoreBf16Split(u32),
}

/// As `attention_fwd_launch` for a head dim of `SUPPORTED_HEAD_DIMS` (others panic: the
/// non-suffix launcher checks it first), on the default kernel (`AttentionKernel::SplitKeys`).
pub fn attention_fwd_dim_launch(
    head_dim: usize,
    o: u64,
    lse: u64,
    q: u64,
    k: u64,
    v: u64,
    p: &AttentionParams,
) -> Launch {
    attention_fwd_kernel_launch(AttentionKernel::SplitKeys, head_dim, o, lse, q, k, v, p)
}

/// As `attention_fwd_dim_launch` on the kernel `which`.
#[allow(clippy::too_many_arguments)]
pub fn attention_fwd_kernel_launch(
    which: AttentionKernel,
    head_dim: usize,
    o: u64,
    lse: u64,
    q: u64,
    k: u64,
    v: u64,
    p: &AttentionParams,
) -> Launch {
    let (module, kernel, threads) = match (which, head_dim) {
        (AttentionKernel::PerQuery, 64) => (MODULE, "attention_fwd_f32", THREADS),
        (AttentionKernel::PerQuery, 32) => (MODULE, "attention_fwd_d32_f32", THREADS),
        (AttentionKernel::SplitKeys, 64) => (MODULE, "attention_fwd_split_f32", SPLIT_THREADS),
        (AttentionKernel::SplitKeys, 32) => (MODULE, "attention_fwd_split_d32_f32", SPLIT_THREADS),
        (AttentionKernel::TensorCoreBf16, 64) => (TC_MODULE, "attention_fwd_tc_bf16", TC_THREADS),
        (AttentionKernel::TensorCoreBf16, 32) => (TC_MODULE, "attention_fwd_tc_d32_bf16", TC_THREADS),
        (AttentionKernel::TensorCoreBf16KeyGroups, 64) => (TC_MODULE, "attention_fwd_tc_kg2_bf16", 2 * TC_THREADS),
        (AttentionKernel::TensorCoreBf16KeyGroups, 32) => (TC_MODULE, "attention_fwd_tc_kg2_d32_bf16", 2 * TC_THREADS),
        (AttentionKernel::TensorCoreBf16Wide, 64) => (TC_MODULE, "attention_fwd_tc_w8_bf16", 2 * TC_THREADS),
        (AttentionKernel::TensorCoreBf16Wide, 32) => (TC_MODULE, "attention_fwd_tc_w8_d32_bf16", 2 * TC_THREADS),
        (AttentionKernel::TensorCoreBf16Split(_), 64) => (TC_MODULE, "attention_fwd_tc_split_bf16", TC_THREADS),
        (AttentionKernel::TensorCoreBf16Split(_), 32) => (TC_MODULE, "attention_fwd_tc_split_d32_bf16", TC_THREADS),
        (_, d) => panic!("no attention kernel for head dim {d}"),
    };
    let splits = match which {
        AttentionKernel::TensorCoreBf16Split(s) => Some(s),
        _ => None,
    };
    let queries = if which == AttentionKernel::TensorCoreBf16Wide { 2 * QUERIES_PER_BLOCK } else { QUERIES_PER_BLOCK };
    let grid = (
        (p.len as usize).div_ceil(queries).max(1) as u32,
        p.heads,
        p.batch * splits.unwrap_or(1),
    );
    let cfg = LaunchCfg {
        grid,
        block: (threads, 1, 1),
        smem_bytes: 0,
    };
    let mut args = vec![
        KArg::Ptr(o),
        KArg::Ptr(lse),
        KArg::Ptr(q),
        KArg::Ptr(k),
        KArg::Ptr(v),
        KArg::pod(p),
    ];
    args.extend(splits.map(KArg::U32));
    Launch {
        module,
        kernel,
        cfg,
        args,
    }
}

/// `attention_fwd_kernel_launch` of the one-pass or wide tensor-core kernel writing `o` rounded
/// to bf16 (`ob`: bf16 [B, L, heads * D], dense as the f32 `o` would be); None for the other
/// kernels (they write f32 only).
pub fn attention_fwd_bf16_out_launch(which: AttentionKernel, head_dim: usize, ob: u64, lse: u64, qkv: [u64; 3], p: &AttentionParams) -> Option<Launch> {
    let kernel = match (which, head_dim) {
        (AttentionKernel::TensorCoreBf16, 64) => "attention_fwd_tc_bf16_ob",
        (AttentionKernel::TensorCoreBf16, 32) => "attention_fwd_tc_d32_bf16_ob",
        (AttentionKernel::TensorCoreBf16Wide, 64) => "attention_fwd_tc_w8_bf16_ob",
        (AttentionKernel::TensorCoreBf16Wide, 32) => "attention_fwd_tc_w8_d32_bf16_ob",
        _ => return None,
    };
    let [q, k, v] = qkv;
    Some(Launch { kernel, ..attention_fwd_kernel_launch(which, head_dim, ob, lse, q, k, v, p) })
}

/// (o [batch, len, heads * 64], lse [batch, heads, len]) for dense q, k, v of that shape.
pub fn attention_fwd(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    batch: usize,
    len: usize,
    heads: usize,
) -> Result<(CudaStorage, CudaStorage)> {
    attention_fwd_dim(q, k, v, batch, len, heads, HEAD_DIM)
}

/// As `attention_fwd` for tensors [batch, len, heads * head_dim], f32 numerics.
pub fn attention_fwd_dim(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
) -> Result<(CudaStorage, CudaStorage)> {
    attention_fwd_with(AttentionKernel::SplitKeys, q, k, v, (batch, len, heads, head_dim))
}

/// As `attention_fwd_dim` on bf16 tensor cores (`AttentionKernel::TensorCoreBf16`: q, k, v and
/// the probabilities rounded to bf16, f32 softmax and sums; inference under bf16 precision), with
/// the keys split as `tc_splits` says. Only `o`: inference has no backward, so no log-sum-exp is
/// written.
pub fn attention_fwd_bf16(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
) -> Result<CudaStorage> {
    attention_fwd_tc_plan(q, k, v, (batch, len, heads, head_dim), TcPlan::for_shape(batch, len, heads, head_dim))
}

/// The f32 forward on the kernel `which` (not the tensor-core ones: `attention_fwd_bf16`) for
/// dense q, k, v `[batch, len, heads * head_dim]`.
pub fn attention_fwd_with(
    which: AttentionKernel,
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    dims: (usize, usize, usize, usize),
) -> Result<(CudaStorage, CudaStorage)> {
    if !matches!(which, AttentionKernel::PerQuery | AttentionKernel::SplitKeys) {
        return Err(Error::msg(format!("attention: {which:?} is not an f32 kernel (attention_fwd_bf16 runs the tensor-core ones)")));
    }
    let p = checked_params(q, k, v, dims)?;
    let (batch, len, heads, head_dim) = dims;
    let dev = q.device();
    let (o, lse) = (dev.alloc(DType::F32, batch * len * heads * head_dim)?, dev.alloc(DType::F32, batch * heads * len)?);
    let launch = attention_fwd_kernel_launch(which, head_dim, device_ptr(&o, 0), device_ptr(&lse, 0), device_ptr(q, 0), device_ptr(k, 0), device_ptr(v, 0), &p);
    run_on_device(dev, &launch)?;
    Ok((o, lse))
}

/// How many key ranges the tensor-core forward splits the keys into: enough for ~128 blocks (64
/// queries of one head each, about one per multiprocessor of a large GPU), at most 4 ranges and
/// never more than the 64-key tiles. Measured on an H200 (2026-11-26): the paper model at batch 1
/// already has 128 blocks, and splitting its keys in 2 was slower (54 against 50 us), so it gets
/// 1; the tiny preset (2 heads: 32 blocks) gets 4 (not timed on a GPU yet).
pub fn tc_splits(batch: usize, len: usize, heads: usize) -> usize {
    let tiles = len.div_ceil(QUERIES_PER_BLOCK).max(1);
    TC_TARGET_BLOCKS.div_ceil((tiles * heads * batch).max(1)).clamp(1, 4).min(tiles)
}

/// Blocks the tensor-core forward's grid aims at (about one per multiprocessor of a large GPU).
pub const TC_TARGET_BLOCKS: usize = 128;

/// Set to `0` to keep the bf16 attention at 64 queries per block where the grid would allow 128
/// (`TcPlan::Wide`, the default since it was timed on an H100: 92.4 -> 81.1 us at batch 4 of the
/// paper model, BENCHMARKS.md 2026-11-27).
pub const WIDE_ENV: &str = "FDM_ATTENTION_WIDE";

/// Whether the wide kernel may be used: unless `FDM_ATTENTION_WIDE=0` (read once: every bf16
/// attention asks).
pub fn wide_requested() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var(WIDE_ENV).map_or(true, |v| v != "0"))
}

/// How the tensor-core forward covers the keys of a query tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcPlan {
    /// One pass over all keys (`AttentionKernel::TensorCoreBf16`).
    OnePass,
    /// One pass in two key groups of 4 warps merged inside the block
    /// (`AttentionKernel::TensorCoreBf16KeyGroups`; opt-in until timed on a GPU).
    KeyGroups,
    /// One pass, 128 queries per block (`AttentionKernel::TensorCoreBf16Wide`; the default where
    /// its grid keeps `TC_TARGET_BLOCKS` blocks, unless `FDM_ATTENTION_WIDE=0`).
    Wide,
    /// The keys in this many ranges (2 to one per 64-key tile), each range's softmax result into
    /// partial buffers, then `attention_tc_merge`.
    Split(usize),
    /// q, k, v rounded to bf16 first, then the bf16-input kernel, 128 queries per block
    /// (`attention_fa.rs`; head dim 64 only; where `Wide` would run, when
    /// `FDM_ATTENTION_BF16_INPUTS=1`, until it is timed on a GPU).
    Bf16Inputs,
}

impl TcPlan {
    /// The default for a shape: `Wide` where its grid still has `TC_TARGET_BLOCKS` blocks (unless
    /// `FDM_ATTENTION_WIDE=0`; `Bf16Inputs` there instead for head dim 64 when
    /// `FDM_ATTENTION_BF16_INPUTS=1`), else `tc_splits`' count of key ranges.
    pub fn for_shape(batch: usize, len: usize, heads: usize, head_dim: usize) -> TcPlan {
        match TcPlan::choose(batch, len, heads, wide_requested()) {
            TcPlan::Wide if head_dim == FA_HEAD_DIM && bf16_inputs_requested() => TcPlan::Bf16Inputs,
            plan => plan,
        }
    }

    /// `for_shape` with the wide kernel allowed (`wide`) or not.
    pub fn choose(batch: usize, len: usize, heads: usize, wide: bool) -> TcPlan {
        if wide && len.div_ceil(2 * QUERIES_PER_BLOCK) * heads * batch >= TC_TARGET_BLOCKS {
            return TcPlan::Wide;
        }
        match tc_splits(batch, len, heads) {
            1 => TcPlan::OnePass,
            n => TcPlan::Split(n),
        }
    }
}

/// The tensor-core forward of dense q, k, v covering the keys as `plan` says. Returns `o` only
/// (no log-sum-exp is written).
pub fn attention_fwd_tc_plan(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    dims: (usize, usize, usize, usize),
    plan: TcPlan,
) -> Result<CudaStorage> {
    attention_fwd_tc_plan_to(q, k, v, dims, plan, DType::F32)
}

/// `attention_fwd_tc_plan` with `o` in `o_dtype` (f32, or bf16: `tc_forward`).
pub fn attention_fwd_tc_plan_to(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    dims: (usize, usize, usize, usize),
    plan: TcPlan,
    o_dtype: DType,
) -> Result<CudaStorage> {
    let p = checked_params(q, k, v, dims)?;
    tc_forward(q, [device_ptr(q, 0), device_ptr(k, 0), device_ptr(v, 0)], &p, dims.3, plan, o_dtype)
}

/// The bf16 tensor-core forward of the fused projection `qkv` [batch, len, 3 * heads * head_dim]
/// (q, k, v its three column blocks, in that order): o dense [batch, len, heads * head_dim].
/// Saves bf16 inference two GEMMs and their input casts per layer (one projection instead of
/// three) and the copies that splitting the fused output would cost. `o` in `o_dtype` (f32, or
/// bf16 for a bf16-weight Linear to read without its cast: `tc_forward`).
pub fn attention_fwd_bf16_packed(qkv: &CudaStorage, batch: usize, len: usize, heads: usize, head_dim: usize, o_dtype: DType) -> Result<CudaStorage> {
    let (p, ptrs) = packed_pointers(qkv, batch, len, heads, head_dim)?;
    tc_forward(qkv, ptrs, &p, head_dim, TcPlan::for_shape(batch, len, heads, head_dim), o_dtype)
}

/// As `attention_fwd_bf16_packed` in f32 (`AttentionKernel::SplitKeys`, the f32 forward's
/// default), for inference: only `o`, no log-sum-exp.
pub fn attention_fwd_packed(qkv: &CudaStorage, batch: usize, len: usize, heads: usize, head_dim: usize) -> Result<CudaStorage> {
    let (p, [qp, kp, vp]) = packed_pointers(qkv, batch, len, heads, head_dim)?;
    let o = qkv.device().alloc(DType::F32, batch * len * heads * head_dim)?;
    let launch = attention_fwd_kernel_launch(AttentionKernel::SplitKeys, head_dim, device_ptr(&o, 0), 0, qp, kp, vp, &p);
    run_on_device(qkv.device(), &launch)?;
    Ok(o)
}

/// Checks the fused projection `qkv` [batch, len, 3 * heads * head_dim]; its kernel parameters
/// and the device addresses of its q, k and v column blocks.
fn packed_pointers(qkv: &CudaStorage, batch: usize, len: usize, heads: usize, head_dim: usize) -> Result<(AttentionParams, [u64; 3])> {
    check_dims(batch, len, heads, head_dim)?;
    let width = heads * head_dim;
    u32_arg("attention", 3 * batch * len * width)?;
    check_f32("attention", qkv, 3 * batch * len * width)?;
    let base = device_ptr(qkv, 0);
    let block = (width * DType::F32.size_in_bytes()) as u64;
    Ok((AttentionParams::packed_qkv(batch, len, heads, head_dim), [base, base + block, base + 2 * block]))
}

/// Runs the tensor-core forward on the q, k, v device pointers `qkv` (laid out as `p` says) into
/// a new dense o of `o_dtype`, covering the keys as `plan` says; `like` names the device. A bf16
/// o is the f32 result rounded to nearest even: written so by the one-pass and wide kernels,
/// converted after the other plans.
fn tc_forward(like: &CudaStorage, qkv: [u64; 3], p: &AttentionParams, head_dim: usize, plan: TcPlan, o_dtype: DType) -> Result<CudaStorage> {
    if !matches!(o_dtype, DType::F32 | DType::BF16) {
        return Err(Error::DType { op: "attention (output: f32 or bf16)", dtype: o_dtype });
    }
    let (batch, len, heads) = (p.batch as usize, p.len as usize, p.heads as usize);
    let (whole, splits) = match plan {
        TcPlan::OnePass => (AttentionKernel::TensorCoreBf16, 1),
        TcPlan::KeyGroups => (AttentionKernel::TensorCoreBf16KeyGroups, 1),
        TcPlan::Wide => (AttentionKernel::TensorCoreBf16Wide, 1),
        TcPlan::Split(n) => (AttentionKernel::TensorCoreBf16, n),
        TcPlan::Bf16Inputs if head_dim == FA_HEAD_DIM => return fa_forward(like.device(), qkv, p, o_dtype),
        TcPlan::Bf16Inputs => {
            return Err(Error::shape("attention", format!("head dim {head_dim}: the bf16-input kernel supports {FA_HEAD_DIM}")))
        }
    };
    if splits == 0 || splits > len.div_ceil(QUERIES_PER_BLOCK) || batch * splits > 65535 {
        return Err(Error::shape("attention", format!("{splits} key splits of {len} keys (1 to one per 64-key tile)")));
    }
    // The kernel reads 16-byte pieces: rows of 32 or 64 per head (times 1 or 3) keep every
    // piece aligned when the base pointers are (device blocks are; a foreign pointer may not be).
    if qkv.iter().any(|ptr| !ptr.is_multiple_of(16)) || !p.row_stride.is_multiple_of(4) || !p.batch_stride.is_multiple_of(4) {
        return Err(Error::msg("attention (bf16 tensor cores): q, k and v must be 16-byte aligned"));
    }
    let dev = like.device();
    let n = batch * len * heads * head_dim;
    let has_bf16_entry = matches!(whole, AttentionKernel::TensorCoreBf16 | AttentionKernel::TensorCoreBf16Wide);
    if o_dtype == DType::BF16 && splits == 1 && has_bf16_entry {
        let ob = dev.alloc(DType::BF16, n)?;
        if let Some(launch) = attention_fwd_bf16_out_launch(whole, head_dim, device_ptr(&ob, 0), 0, qkv, p) {
            run_on_device(dev, &launch)?;
            return Ok(ob);
        }
    }
    let o = tc_forward_f32(dev, qkv, p, head_dim, (whole, splits))?;
    if o_dtype == DType::BF16 {
        return super::gemm_tc::convert(&o, DType::BF16);
    }
    Ok(o)
}

/// `tc_forward` into f32 with the kernel `whole` over all keys (`splits` = 1) or the split
/// kernel and the merge.
fn tc_forward_f32(dev: &crate::cuda::CudaDevice, qkv: [u64; 3], p: &AttentionParams, head_dim: usize, (whole, splits): (AttentionKernel, usize)) -> Result<CudaStorage> {
    let [qp, kp, vp] = qkv;
    let (batch, len, heads) = (p.batch as usize, p.len as usize, p.heads as usize);
    let n = batch * len * heads * head_dim;
    let o = dev.alloc(DType::F32, n)?;
    if splits == 1 {
        let launch = attention_fwd_kernel_launch(whole, head_dim, device_ptr(&o, 0), 0, qp, kp, vp, p);
        run_on_device(dev, &launch)?;
        return Ok(o);
    }
    u32_arg("attention partials", splits * n)?;
    let (o_part, lse_part) = (dev.alloc(DType::F32, splits * n)?, dev.alloc(DType::F32, splits * batch * heads * len)?);
    let ptrs = [device_ptr(&o, 0), 0, device_ptr(&o_part, 0), device_ptr(&lse_part, 0)];
    for launch in attention_tc_split_launches(head_dim, splits, ptrs, qkv, p) {
        run_on_device(dev, &launch)?;
    }
    Ok(o)
}

/// The two launches of the split tensor-core forward (`splits` >= 2, at most one per 64-key
/// tile): each key range's softmax result into the partials `o_part [splits, B, L, heads * D]`
/// and `lse_part [splits, B, heads, L]`, then their merge into `o`, `lse` (which may be 0).
/// `out` = [o, lse, o_part, lse_part], `qkv` = [q, k, v].
pub fn attention_tc_split_launches(head_dim: usize, splits: usize, out: [u64; 4], qkv: [u64; 3], p: &AttentionParams) -> [Launch; 2] {
    let [o, lse, o_part, lse_part] = out;
    let which = AttentionKernel::TensorCoreBf16Split(splits as u32);
    let split = attention_fwd_kernel_launch(which, head_dim, o_part, lse_part, qkv[0], qkv[1], qkv[2], p);
    let n = (p.batch * p.len * p.heads) as usize * head_dim;
    let merge = Launch {
        module: TC_MODULE,
        kernel: "attention_tc_merge",
        cfg: LaunchCfg::for_elements(n, 256, 4096),
        args: vec![
            KArg::Ptr(o),
            KArg::Ptr(lse),
            KArg::Ptr(o_part),
            KArg::Ptr(lse_part),
            KArg::pod(p),
            KArg::U32(splits as u32),
            KArg::U32(head_dim as u32),
        ],
    };
    [split, merge]
}

/// A head dim with a kernel, and sizes the grid can hold.
fn check_dims(batch: usize, len: usize, heads: usize, head_dim: usize) -> Result<()> {
    if !SUPPORTED_HEAD_DIMS.contains(&head_dim) {
        return Err(Error::shape(
            "attention",
            format!("head dim {head_dim}: the CUDA kernel supports {SUPPORTED_HEAD_DIMS:?}"),
        ));
    }
    if batch == 0 || len == 0 || heads == 0 || heads > 65535 || batch > 65535 {
        return Err(Error::shape(
            "attention",
            format!("batch {batch}, length {len}, heads {heads}"),
        ));
    }
    Ok(())
}

/// Checks dense q, k, v `[batch, len, heads * head_dim]`; their kernel parameters.
fn checked_params(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    (batch, len, heads, head_dim): (usize, usize, usize, usize),
) -> Result<AttentionParams> {
    check_dims(batch, len, heads, head_dim)?;
    let n = batch * len * heads * head_dim;
    u32_arg("attention", n)?;
    for t in [q, k, v] {
        check_f32("attention", t, n)?;
    }
    Ok(AttentionParams::dense_dim(batch, len, heads, head_dim))
}
