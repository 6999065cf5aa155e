//! Launchers for `kernels/attention_backward.cu`: the gradients dq, dk, dv of the multi-head
//! attention of `attention.rs` (spec §3.2, head dim 64 or the tiny preset's 32, no mask),
//! flash-attention style from the forward's output o and log-sum-exp lse: no L x L matrix, no
//! atomics (bit-reproducible). q, k, v, o, dout and the gradients are dense
//! `[batch, len, heads * head_dim]` (the layout of the query/key/value Linear outputs); lse is
//! `[batch, heads, len]` as `attention_fwd` writes it. The `*_launch` / `attention_bwd` forms
//! without `dim` take head dim 64; the `_dim` forms pick the kernel (`_d32` suffix for 32).
//! Three launches: delta = rowsum(dout * o), then dk/dv (a block per 64 keys), then dq (a block
//! per 64 queries).

use super::attention::{AttentionParams, HEAD_DIM, SUPPORTED_HEAD_DIMS};
use super::conv2d_backward::check_arg;
use crate::cuda::launch::{device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "attention_backward";
/// Keys per dk/dv block and queries per dq block.
const TILE: usize = 64;
/// Threads of the dk/dv and dq blocks: two per key or query, each with half of the head dim.
const THREADS: u32 = 128;
/// Rows per block of the delta kernel (one warp each).
const DELTA_ROWS: usize = 8;
const OP: &str = "attention_backward";

/// The argument names of `attention_bwd`, in order.
pub const ARG_NAMES: [&str; 6] = ["q", "k", "v", "o", "dout", "lse"];

/// Checks the sizes and the (dtype, length) of the six inputs named in `ARG_NAMES` and returns
/// the kernel parameters of the dense layout. Pure, so it is tested without a GPU.
pub fn check_attention_bwd_args(
    batch: usize,
    len: usize,
    heads: usize,
    args: &[(DType, usize); 6],
) -> Result<AttentionParams> {
    check_attention_bwd_args_dim(batch, len, heads, HEAD_DIM, args)
}

/// As `check_attention_bwd_args` for tensors `[batch, len, heads * head_dim]`; a head dim
/// without a kernel (not in `SUPPORTED_HEAD_DIMS`) is an error.
pub fn check_attention_bwd_args_dim(
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
    args: &[(DType, usize); 6],
) -> Result<AttentionParams> {
    if !SUPPORTED_HEAD_DIMS.contains(&head_dim) {
        return Err(Error::shape(
            OP,
            format!("head dim {head_dim}: the CUDA kernels support {SUPPORTED_HEAD_DIMS:?}"),
        ));
    }
    if batch == 0 || len == 0 || heads == 0 || heads > 65535 || batch > 65535 {
        return Err(Error::shape(
            OP,
            format!("batch {batch}, length {len}, heads {heads}"),
        ));
    }
    let n = batch * len * heads * head_dim;
    u32_arg(OP, n)?;
    let lse_len = batch * heads * len;
    for (name, &(dtype, have)) in ARG_NAMES.iter().zip(args) {
        let need = if *name == "lse" { lse_len } else { n };
        check_arg(OP, name, dtype, have, need)?;
    }
    Ok(AttentionParams::dense_dim(batch, len, heads, head_dim))
}

/// The kernel name for a head dim (`_d32` for 32). Panics on a head dim without a kernel: the
/// non-suffix launcher checks it first.
fn kernel_name(base: &'static str, head_dim: usize) -> &'static str {
    match (base, head_dim) {
        ("delta", 64) => "attention_bwd_delta_f32",
        ("delta", 32) => "attention_bwd_delta_d32_f32",
        ("dkdv", 64) => "attention_bwd_dkdv_f32",
        ("dkdv", 32) => "attention_bwd_dkdv_d32_f32",
        ("dq", 64) => "attention_bwd_dq_f32",
        ("dq", 32) => "attention_bwd_dq_d32_f32",
        (b, d) => panic!("no attention backward kernel {b} for head dim {d}"),
    }
}

fn grid(p: &AttentionParams, rows_per_block: usize) -> (u32, u32, u32) {
    (
        (p.len as usize).div_ceil(rows_per_block).max(1) as u32,
        p.heads,
        p.batch,
    )
}

/// delta `[batch, heads, len]` = rowsum(dout * o) per (b, h, query). Head dim 64.
pub fn attention_bwd_delta_launch(delta: u64, o: u64, dout: u64, p: &AttentionParams) -> Launch {
    attention_bwd_delta_dim_launch(HEAD_DIM, delta, o, dout, p)
}

/// As `attention_bwd_delta_launch` for a head dim of `SUPPORTED_HEAD_DIMS`.
pub fn attention_bwd_delta_dim_launch(
    head_dim: usize,
    delta: u64,
    o: u64,
    dout: u64,
    p: &AttentionParams,
) -> Launch {
    Launch {
        module: MODULE,
        kernel: kernel_name("delta", head_dim),
        cfg: LaunchCfg {
            grid: grid(p, DELTA_ROWS),
            block: (32 * DELTA_ROWS as u32, 1, 1),
            smem_bytes: 0,
        },
        args: vec![
            KArg::Ptr(delta),
            KArg::Ptr(o),
            KArg::Ptr(dout),
            KArg::pod(p),
        ],
    }
}

/// dk and dv. Grid: (key tiles, heads, batch). Head dim 64.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_dkdv_launch(
    dk: u64,
    dv: u64,
    q: u64,
    k: u64,
    v: u64,
    dout: u64,
    lse: u64,
    delta: u64,
    p: &AttentionParams,
) -> Launch {
    attention_bwd_dkdv_dim_launch(HEAD_DIM, dk, dv, q, k, v, dout, lse, delta, p)
}

/// As `attention_bwd_dkdv_launch` for a head dim of `SUPPORTED_HEAD_DIMS`.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_dkdv_dim_launch(
    head_dim: usize,
    dk: u64,
    dv: u64,
    q: u64,
    k: u64,
    v: u64,
    dout: u64,
    lse: u64,
    delta: u64,
    p: &AttentionParams,
) -> Launch {
    let args = [dk, dv, q, k, v, dout, lse, delta]
        .into_iter()
        .map(KArg::Ptr)
        .chain([KArg::pod(p)])
        .collect();
    Launch {
        module: MODULE,
        kernel: kernel_name("dkdv", head_dim),
        cfg: LaunchCfg {
            grid: grid(p, TILE),
            block: (THREADS, 1, 1),
            smem_bytes: 0,
        },
        args,
    }
}

/// dq. Grid: (query tiles, heads, batch). Head dim 64.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_dq_launch(
    dq: u64,
    q: u64,
    k: u64,
    v: u64,
    dout: u64,
    lse: u64,
    delta: u64,
    p: &AttentionParams,
) -> Launch {
    attention_bwd_dq_dim_launch(HEAD_DIM, dq, q, k, v, dout, lse, delta, p)
}

/// As `attention_bwd_dq_launch` for a head dim of `SUPPORTED_HEAD_DIMS`.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_dq_dim_launch(
    head_dim: usize,
    dq: u64,
    q: u64,
    k: u64,
    v: u64,
    dout: u64,
    lse: u64,
    delta: u64,
    p: &AttentionParams,
) -> Launch {
    let args = [dq, q, k, v, dout, lse, delta]
        .into_iter()
        .map(KArg::Ptr)
        .chain([KArg::pod(p)])
        .collect();
    Launch {
        module: MODULE,
        kernel: kernel_name("dq", head_dim),
        cfg: LaunchCfg {
            grid: grid(p, TILE),
            block: (THREADS, 1, 1),
            smem_bytes: 0,
        },
        args,
    }
}

/// (dq, dk, dv), each `[batch, len, heads * 64]`, from dense q, k, v, the forward's o and lse
/// (`[batch, heads, len]`) and the output gradient dout.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    o: &CudaStorage,
    dout: &CudaStorage,
    lse: &CudaStorage,
    batch: usize,
    len: usize,
    heads: usize,
) -> Result<(CudaStorage, CudaStorage, CudaStorage)> {
    attention_bwd_dim(q, k, v, o, dout, lse, batch, len, heads, HEAD_DIM)
}

/// As `attention_bwd` for tensors `[batch, len, heads * head_dim]`, head dim 64 or 32.
#[allow(clippy::too_many_arguments)]
pub fn attention_bwd_dim(
    q: &CudaStorage,
    k: &CudaStorage,
    v: &CudaStorage,
    o: &CudaStorage,
    dout: &CudaStorage,
    lse: &CudaStorage,
    batch: usize,
    len: usize,
    heads: usize,
    head_dim: usize,
) -> Result<(CudaStorage, CudaStorage, CudaStorage)> {
    let bufs = [q, k, v, o, dout, lse];
    let args = bufs.map(|s| (s.dtype(), s.len()));
    let p = check_attention_bwd_args_dim(batch, len, heads, head_dim, &args)?;
    let n = batch * len * heads * head_dim;
    let dev = q.device();
    let delta = dev.alloc(DType::F32, batch * heads * len)?;
    let (dq, dk, dv) = (
        dev.alloc(DType::F32, n)?,
        dev.alloc(DType::F32, n)?,
        dev.alloc(DType::F32, n)?,
    );
    let ptr = |s: &CudaStorage| device_ptr(s, 0);
    run_on_device(
        dev,
        &attention_bwd_delta_dim_launch(head_dim, ptr(&delta), ptr(o), ptr(dout), &p),
    )?;
    let (pq, pk, pv, pdo, plse, pdelta) =
        (ptr(q), ptr(k), ptr(v), ptr(dout), ptr(lse), ptr(&delta));
    run_on_device(
        dev,
        &attention_bwd_dkdv_dim_launch(
            head_dim,
            ptr(&dk),
            ptr(&dv),
            pq,
            pk,
            pv,
            pdo,
            plse,
            pdelta,
            &p,
        ),
    )?;
    run_on_device(
        dev,
        &attention_bwd_dq_dim_launch(head_dim, ptr(&dq), pq, pk, pv, pdo, plse, pdelta, &p),
    )?;
    Ok((dq, dk, dv))
}
