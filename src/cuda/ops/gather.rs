//! Launchers for `kernels/gather.cu`: the embedding lookup and its deterministic backward
//! (spec §3.2: `table [vocab, dim]`, u32 indices), row gather / scatter of `cpu/ops/index.rs`
//! (spec §5.2), and the block copy behind concat and the backward of narrow
//! (`params/concat.rs`). All buffers dense and row-major.

use super::checks::{check_u32, download_u32, run_flag_launch, upload_u32};
use super::elementwise;
use crate::cpu::ops::embedding::first_out_of_range;
use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::concat::BlockCopyParams;
use crate::params::embedding::EmbeddingParams;
use crate::params::index::RowsParams;

const MODULE: &str = "gather";
const THREADS: u32 = 256;
const MAX_BLOCKS: u32 = 4096;
/// Cap on one-block-per-row grids (the kernels loop grid-stride past it).
const MAX_ROW_BLOCKS: usize = 1 << 16;

/// `out [count, width] = table [rows, width]` at rows `idx [count]` (zeros for an index >= rows).
pub fn gather_rows_launch(out: u64, table: u64, idx: u64, p: RowsParams) -> Launch {
    let n = p.count as usize * p.width as usize;
    let args = vec![
        KArg::Ptr(out),
        KArg::Ptr(table),
        KArg::Ptr(idx),
        KArg::U32(p.count),
        KArg::U32(p.width),
        KArg::U32(p.rows),
    ];
    Launch {
        module: MODULE,
        kernel: "gather_rows_f32",
        cfg: LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS),
        args,
    }
}

/// The embedding lookup: a row gather with rows = vocab, width = dim, count = n.
pub fn embedding_fwd_launch(out: u64, table: u64, idx: u64, p: &EmbeddingParams) -> Launch {
    let rows = RowsParams {
        rows: p.vocab,
        width: p.dim,
        count: p.n,
    };
    gather_rows_launch(out, table, idx, rows)
}

/// `dtable [vocab, dim]` (overwritten) from `idx [n]` and `g [n, dim]`: one block per vocabulary
/// row, enough threads for the row's columns (a multiple of 32 up to 256).
pub fn embedding_bwd_launch(dtable: u64, idx: u64, g: u64, p: &EmbeddingParams) -> Launch {
    let (_, vocab, dim) = p.dims();
    let threads = (dim.div_ceil(4).div_ceil(32) * 32).clamp(32, 256) as u32;
    let args = vec![
        KArg::Ptr(dtable),
        KArg::Ptr(idx),
        KArg::Ptr(g),
        KArg::U32(p.n),
        KArg::U32(p.vocab),
        KArg::U32(p.dim),
    ];
    Launch {
        module: MODULE,
        kernel: "embedding_bwd_f32",
        cfg: LaunchCfg::linear(vocab.clamp(1, MAX_ROW_BLOCKS) as u32, threads, 0),
        args,
    }
}

/// `table[idx[i], :] = values[i, :]` in place; the last of repeated indices wins.
pub fn scatter_rows_launch(table: u64, idx: u64, values: u64, p: RowsParams) -> Launch {
    let args = vec![
        KArg::Ptr(table),
        KArg::Ptr(idx),
        KArg::Ptr(values),
        KArg::U32(p.count),
        KArg::U32(p.width),
        KArg::U32(p.rows),
    ];
    let blocks = (p.count as usize).clamp(1, MAX_ROW_BLOCKS) as u32;
    Launch {
        module: MODULE,
        kernel: "scatter_rows_f32",
        cfg: LaunchCfg::linear(blocks, THREADS, 0),
        args,
    }
}

/// Dense `src [outer, src_inner]` into columns `[dst_offset, dst_offset + src_inner)` of
/// `dst [outer, dst_inner]` (any 4-byte dtype).
pub fn copy_block_launch(dst: u64, src: u64, p: &BlockCopyParams) -> Launch {
    let n = p.outer as usize * p.src_inner as usize;
    let args = vec![
        KArg::Ptr(dst),
        KArg::Ptr(src),
        KArg::U32(p.outer),
        KArg::U32(p.src_inner),
        KArg::U32(p.dst_inner),
        KArg::U32(p.dst_offset),
    ];
    Launch {
        module: MODULE,
        kernel: "copy_block_b32",
        cfg: LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS),
        args,
    }
}

/// `*bad` (set to 0xffffffff beforehand) lowered to the first position with `idx >= limit`.
pub fn index_check_launch(bad: u64, idx: u64, n: usize, limit: usize) -> Launch {
    let args = vec![
        KArg::Ptr(bad),
        KArg::Ptr(idx),
        KArg::U32(n as u32),
        KArg::U32(limit.min(u32::MAX as usize) as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "index_check_u32",
        cfg: LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS),
        args,
    }
}

/// Err naming the first index of `idx` (u32 [n], on the device) that is >= `limit`. Waits for
/// the stream (one word comes back).
pub fn check_indices(op: &'static str, idx: &CudaStorage, n: usize, limit: usize) -> Result<()> {
    check_u32(op, idx, n)?;
    if n == 0 {
        return Ok(());
    }
    let pidx = device_ptr(idx, 0);
    let bad = run_flag_launch(idx.device(), |flag| {
        index_check_launch(flag, pidx, n, limit)
    })?;
    match bad {
        None => Ok(()),
        Some(_) => {
            let host = download_u32(idx)?;
            let (pos, i) = first_out_of_range(&host[..n], limit).unwrap_or((0, 0));
            Err(Error::shape(
                op,
                format!("index {i} at position {pos} is out of range for a table of {limit} rows"),
            ))
        }
    }
}

/// The embedding lookup: f32 `table [vocab, dim]`, u32 `idx [n]` -> f32 `[n, dim]`.
/// Out-of-range indices are an Err naming the index and its position.
pub fn embedding_fwd(
    table: &CudaStorage,
    idx: &CudaStorage,
    p: &EmbeddingParams,
) -> Result<CudaStorage> {
    const OP: &str = "embedding";
    let (n, vocab, dim) = p.dims();
    check_f32(OP, table, vocab * dim)?;
    u32_arg(OP, n * dim)?;
    check_indices(OP, idx, n, vocab)?;
    let out = table.device().alloc(DType::F32, n * dim)?;
    let launch = embedding_fwd_launch(
        device_ptr(&out, 0),
        device_ptr(table, 0),
        device_ptr(idx, 0),
        p,
    );
    run_on_device(table.device(), &launch)?;
    Ok(out)
}

/// Gradient of the table: u32 `idx [n]`, f32 `g [n, dim]` -> f32 `[vocab, dim]` (row v = sum of
/// g over positions with index v, in position order; deterministic).
pub fn embedding_bwd(
    idx: &CudaStorage,
    g: &CudaStorage,
    p: &EmbeddingParams,
) -> Result<CudaStorage> {
    const OP: &str = "embedding backward";
    let (n, vocab, dim) = p.dims();
    check_f32(OP, g, n * dim)?;
    u32_arg(OP, n * dim)?;
    u32_arg(OP, vocab * dim)?;
    check_indices(OP, idx, n, vocab)?;
    let dt = g.device().alloc(DType::F32, vocab * dim)?;
    let launch = embedding_bwd_launch(device_ptr(&dt, 0), device_ptr(idx, 0), device_ptr(g, 0), p);
    run_on_device(g.device(), &launch)?;
    Ok(dt)
}

fn check_host_rows(op: &'static str, idx: &[u32], p: RowsParams) -> Result<()> {
    if idx.len() != p.count as usize {
        return Err(Error::shape(
            op,
            format!("{} indices, params say {}", idx.len(), p.count),
        ));
    }
    if let Some(&bad) = idx.iter().find(|&&r| r >= p.rows) {
        return Err(Error::shape(
            op,
            format!("row index {bad} out of range for {} rows", p.rows),
        ));
    }
    u32_arg(op, p.count as usize * p.width as usize)?;
    Ok(())
}

/// `out [count, width] = table [rows, width]` at the host indices `idx` (checked here).
pub fn gather_rows(table: &CudaStorage, idx: &[u32], p: RowsParams) -> Result<CudaStorage> {
    const OP: &str = "gather_rows";
    check_host_rows(OP, idx, p)?;
    check_f32(OP, table, p.rows as usize * p.width as usize)?;
    let dev = table.device();
    let out = dev.alloc(DType::F32, p.count as usize * p.width as usize)?;
    if idx.is_empty() {
        return Ok(out);
    }
    let di = upload_u32(dev, idx)?;
    let launch = gather_rows_launch(
        device_ptr(&out, 0),
        device_ptr(table, 0),
        device_ptr(&di, 0),
        p,
    );
    run_on_device(dev, &launch)?;
    Ok(out)
}

/// `table[idx[i], :] = values[i, :]` written into `table` itself (the sampler's feature table);
/// later indices win on repeats. `values` is f32 `[count, width]`.
pub fn scatter_rows_in_place(
    table: &CudaStorage,
    idx: &[u32],
    values: &CudaStorage,
    p: RowsParams,
) -> Result<()> {
    const OP: &str = "scatter_rows";
    check_host_rows(OP, idx, p)?;
    check_f32(OP, table, p.rows as usize * p.width as usize)?;
    check_f32(OP, values, p.count as usize * p.width as usize)?;
    if idx.is_empty() {
        return Ok(());
    }
    let dev = table.device();
    let di = upload_u32(dev, idx)?;
    let launch = scatter_rows_launch(
        device_ptr(table, 0),
        device_ptr(&di, 0),
        device_ptr(values, 0),
        p,
    );
    run_on_device(dev, &launch)
}

/// A copy of `table` with the rows at `idx` replaced (see `scatter_rows_in_place`).
pub fn scatter_rows(
    table: &CudaStorage,
    idx: &[u32],
    values: &CudaStorage,
    p: RowsParams,
) -> Result<CudaStorage> {
    let n = p.rows as usize * p.width as usize;
    check_f32("scatter_rows", table, n)?;
    let out = elementwise::strided_copy(table, &[n], &[1], 0)?;
    scatter_rows_in_place(&out, idx, values, p)?;
    Ok(out)
}

/// Writes `src [outer, src_inner]` into its columns of `dst [outer, dst_inner]` in place.
pub fn copy_block(dst: &CudaStorage, src: &CudaStorage, p: &BlockCopyParams) -> Result<()> {
    const OP: &str = "copy_block";
    let (outer, si, di, off) = p.dims();
    if si + off > di {
        return Err(Error::shape(
            OP,
            format!("{si} columns at {off} do not fit in {di}"),
        ));
    }
    u32_arg(OP, outer * di)?;
    if src.dtype() != dst.dtype() || src.dtype().size_in_bytes() != 4 {
        return Err(Error::DType {
            op: OP,
            dtype: src.dtype(),
        });
    }
    if src.len() < outer * si || dst.len() < outer * di {
        return Err(Error::shape(
            OP,
            format!(
                "buffers of {} and {} elements for {p:?}",
                src.len(),
                dst.len()
            ),
        ));
    }
    if outer * si == 0 {
        return Ok(());
    }
    run_on_device(
        dst.device(),
        &copy_block_launch(device_ptr(dst, 0), device_ptr(src, 0), p),
    )
}

/// Concatenation of dense parts that share `outer`: part k is `[outer, inners[k]]` (for concat
/// along dim d: outer = prod(shape[..d]), inner = n_k * prod(shape[d+1..])). The result is
/// `[outer, sum(inners)]`, of the parts' dtype (any 4-byte dtype).
pub fn concat(parts: &[&CudaStorage], outer: usize, inners: &[usize]) -> Result<CudaStorage> {
    let Some(first) = parts.first() else {
        return Err(Error::shape("concat", "no tensors to concatenate"));
    };
    if parts.len() != inners.len() {
        return Err(Error::shape(
            "concat",
            format!("{} parts, {} sizes", parts.len(), inners.len()),
        ));
    }
    let total: usize = inners.iter().sum();
    let out = first.device().alloc(first.dtype(), outer * total)?;
    let mut offset = 0;
    for (part, &inner) in parts.iter().zip(inners) {
        copy_block(
            &out,
            part,
            &BlockCopyParams::new(outer, inner, total, offset),
        )?;
        offset += inner;
    }
    Ok(out)
}

/// Backward of narrow: f32 zeros `[outer, dst_inner]` with `g [outer, src_inner]` written at
/// column `dst_offset` (params/concat.rs).
pub fn narrow_backward(g: &CudaStorage, p: &BlockCopyParams) -> Result<CudaStorage> {
    let (outer, si, di, _) = p.dims();
    check_f32("narrow backward", g, outer * si)?;
    u32_arg("narrow backward", outer * di)?;
    let out = elementwise::fill(g.device(), 0.0, outer * di)?;
    copy_block(&out, g, p)?;
    Ok(out)
}
