//! Launchers for `kernels/reduce.cu`: sum / mean / max / min of a dense f32
//! `x [outer, reduce, inner] -> [outer, inner]` (params/reduce.rs), with the index of the chosen
//! element for max/min (argmax/argmin over the last dim is `inner == 1`), and the backward of
//! max/min (the gradient to the first extreme element of each group).
//!
//! Grid choice: blocks of `TX x TY = 256` threads, TX adjacent output columns by TY steps of the
//! reduced dim, one block per (outer, column tile). When that gives few blocks and long groups
//! (a full reduction, a sum over a long dim) the reduced dim is cut into chunks, one block each,
//! whose partials (two words each) a second kernel combines: `reduce_launches` returns one or two
//! launches and `reduce_partial_words` the size of the partial buffer they need.

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::{CudaDevice, CudaStorage};
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::reduce::{ArgReduceParams, ReduceOp, ReduceParams};

const MODULE: &str = "reduce";
/// Threads per block (RED_THREADS in the kernel).
const THREADS: usize = 256;
/// Blocks that keep an H100's 132 SMs busy several times over; below a quarter of this the
/// reduced dim is split into chunks.
const TARGET_BLOCKS: usize = 1024;
/// Fewest elements per thread per chunk worth a second pass.
const MIN_PER_THREAD: usize = 32;
/// Most chunks per output (the second pass reads them with one block).
const MAX_CHUNKS: usize = 1024;
/// Grid-stride cap on the block count of one launch.
const MAX_BLOCKS: usize = 1 << 20;

/// How one reduction is laid out on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReducePlan {
    /// Threads across output columns (a power of two <= 32) and along the reduced dim.
    pub tx: u32,
    pub ty: u32,
    /// (outer, column tile) pairs: the first pass's blocks before the grid cap.
    pub tiles: usize,
    /// Chunks of the reduced dim (1: one pass) and their length.
    pub chunks: usize,
    pub chunk_len: usize,
}

pub fn reduce_plan(p: &ReduceParams) -> ReducePlan {
    let (outer, red, inner) = p.dims();
    let tx = inner.clamp(1, 32).next_power_of_two();
    let ty = THREADS / tx;
    let tiles = outer * inner.div_ceil(tx);
    let mut chunks = 1;
    if tiles < TARGET_BLOCKS / 4 && red > ty * MIN_PER_THREAD {
        chunks = TARGET_BLOCKS
            .div_ceil(tiles.max(1))
            .min(red.div_ceil(ty * MIN_PER_THREAD))
            .min(MAX_CHUNKS);
    }
    let chunk_len = red.div_ceil(chunks).max(1);
    ReducePlan {
        tx: tx as u32,
        ty: ty as u32,
        tiles,
        chunks: red.div_ceil(chunk_len).max(1),
        chunk_len,
    }
}

/// Words (4 bytes) of the partial buffer the launches of `p` need; 0 when one pass suffices.
pub fn reduce_partial_words(p: &ReduceParams) -> usize {
    let plan = reduce_plan(p);
    if plan.chunks == 1 {
        0
    } else {
        2 * p.outer as usize * p.inner as usize * plan.chunks
    }
}

fn shape_args(p: &ReduceParams) -> [KArg; 4] {
    [
        KArg::U32(p.op),
        KArg::U32(p.outer),
        KArg::U32(p.reduce),
        KArg::U32(p.inner),
    ]
}

/// The launches of one reduction, in order. `out` (f32 [outer*inner]) and `out_idx` (u32, the
/// position along the reduced dim of the chosen element, max/min only) may be 0 (not wanted);
/// `part` is a buffer of `reduce_partial_words(p)` words (0 when that is 0).
pub fn reduce_launches(out: u64, out_idx: u64, part: u64, x: u64, p: &ReduceParams) -> Vec<Launch> {
    let plan = reduce_plan(p);
    let two_pass = plan.chunks > 1;
    let cfg = LaunchCfg {
        grid: (
            plan.tiles.clamp(1, MAX_BLOCKS) as u32,
            plan.chunks as u32,
            1,
        ),
        block: (plan.tx, plan.ty, 1),
        smem_bytes: 0,
    };
    let (o1, i1, p1) = if two_pass {
        (0, 0, part)
    } else {
        (out, out_idx, 0)
    };
    let mut args = vec![KArg::Ptr(o1), KArg::Ptr(i1), KArg::Ptr(p1), KArg::Ptr(x)];
    args.extend(shape_args(p));
    args.push(KArg::U32(plan.chunk_len as u32));
    let mut launches = vec![Launch {
        module: MODULE,
        kernel: "reduce_f32",
        cfg,
        args,
    }];
    if two_pass {
        let outputs = p.outer as usize * p.inner as usize;
        let args = vec![
            KArg::Ptr(out),
            KArg::Ptr(out_idx),
            KArg::Ptr(part),
            KArg::U32(p.op),
            KArg::U32(outputs as u32),
            KArg::U32(p.reduce),
            KArg::U32(plan.chunks as u32),
        ];
        let cfg = LaunchCfg {
            grid: (outputs.clamp(1, MAX_BLOCKS) as u32, 1, 1),
            block: (1, THREADS as u32, 1),
            smem_bytes: 0,
        };
        launches.push(Launch {
            module: MODULE,
            kernel: "reduce_finish_f32",
            cfg,
            args,
        });
    }
    launches
}

/// dx [outer, reduce, inner] from the group gradients g [outer, inner] and the chosen indices
/// `idx` (u32 [outer, inner], from `reduce_launches`' out_idx).
pub fn extreme_scatter_launch(dx: u64, idx: u64, g: u64, p: &ReduceParams) -> Launch {
    let n = p.outer as usize * p.reduce as usize * p.inner as usize;
    let args = vec![
        KArg::Ptr(dx),
        KArg::Ptr(idx),
        KArg::Ptr(g),
        KArg::U32(p.outer),
        KArg::U32(p.reduce),
        KArg::U32(p.inner),
    ];
    Launch {
        module: MODULE,
        kernel: "extreme_scatter_f32",
        cfg: LaunchCfg::for_elements(n, 256, 4096),
        args,
    }
}

fn check_params(what: &'static str, x: &CudaStorage, p: &ReduceParams) -> Result<()> {
    let (outer, red, inner) = p.dims();
    if red == 0 {
        return Err(Error::shape(what, "reduction over an empty dim"));
    }
    let n = outer * red * inner;
    u32_arg(what, n)?;
    check_f32(what, x, n)
}

fn run_reduce(
    dev: &CudaDevice,
    out: u64,
    out_idx: u64,
    x: &CudaStorage,
    p: &ReduceParams,
) -> Result<()> {
    let words = reduce_partial_words(p);
    let part = if words > 0 {
        Some(dev.alloc(DType::U32, words)?)
    } else {
        None
    };
    let ppart = part.as_ref().map_or(0, |b| device_ptr(b, 0));
    for l in reduce_launches(out, out_idx, ppart, device_ptr(x, 0), p) {
        run_on_device(dev, &l)?;
    }
    Ok(())
}

/// Sum / mean / max / min of dense f32 `x [outer, reduce, inner]`: f32 `[outer * inner]`.
pub fn reduce(x: &CudaStorage, p: &ReduceParams) -> Result<CudaStorage> {
    check_params(p.kind().name(), x, p)?;
    let dev = x.device();
    let out = dev.alloc(DType::F32, p.outer as usize * p.inner as usize)?;
    run_reduce(dev, device_ptr(&out, 0), 0, x, p)?;
    Ok(out)
}

/// Max or min with the position along the reduced dim of the first extreme element:
/// (f32 values, u32 positions), both `[outer * inner]`.
pub fn reduce_with_index(x: &CudaStorage, p: &ReduceParams) -> Result<(CudaStorage, CudaStorage)> {
    let what = "reduce_with_index";
    if !matches!(p.kind(), ReduceOp::Max | ReduceOp::Min) {
        return Err(Error::shape(what, "positions exist for max and min only"));
    }
    check_params(what, x, p)?;
    let dev = x.device();
    let n = p.outer as usize * p.inner as usize;
    let (out, idx) = (dev.alloc(DType::F32, n)?, dev.alloc(DType::U32, n)?);
    run_reduce(dev, device_ptr(&out, 0), device_ptr(&idx, 0), x, p)?;
    Ok((out, idx))
}

/// argmax / argmin over the last dim of dense f32 `x [rows, len]`: u32 `[rows]`, ties -> the
/// lowest index, a NaN counts as the extreme.
pub fn argreduce(x: &CudaStorage, p: &ArgReduceParams) -> Result<CudaStorage> {
    let op = if p.is_argmax() {
        ReduceOp::Max
    } else {
        ReduceOp::Min
    };
    let rp = ReduceParams::new(op, p.rows as usize, p.len as usize, 1);
    check_params("argreduce", x, &rp)?;
    let dev = x.device();
    let idx = dev.alloc(DType::U32, p.rows as usize)?;
    run_reduce(dev, 0, device_ptr(&idx, 0), x, &rp)?;
    Ok(idx)
}

/// Backward of max / min (`p.op`) over the middle dim of dense f32 `x [outer, reduce, inner]`:
/// dx (the shape of x) is zero except at the first extreme element of each group, which gets
/// that group's gradient from `g [outer, inner]`.
pub fn extreme_backward(x: &CudaStorage, g: &CudaStorage, p: &ReduceParams) -> Result<CudaStorage> {
    let what = "extreme_backward";
    let (_, idx) = reduce_with_index(x, p)?;
    let n_out = p.outer as usize * p.inner as usize;
    check_f32(what, g, n_out)?;
    let dev = x.device();
    let dx = dev.alloc(DType::F32, n_out * p.reduce as usize)?;
    let launch =
        extreme_scatter_launch(device_ptr(&dx, 0), device_ptr(&idx, 0), device_ptr(g, 0), p);
    run_on_device(dev, &launch)?;
    Ok(dx)
}
