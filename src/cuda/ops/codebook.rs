//! Launchers for `kernels/codebook.cu`: the nearest codebook entry of every feature row with a
//! per-row code range (the dual codebook of spec §2.3: offset 0 for visible positions, 512 for
//! masked ones, span 512), fused distance + argmin with no N x K matrix; ties -> lowest index.

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

const MODULE: &str = "codebook";
/// Rows of z per block and threads per block (CB_ROWS, CB_THREADS in the kernel).
const ROWS_PER_BLOCK: usize = 32;
const THREADS: u32 = 256;

/// norms[k] = |codebook[k,:]|^2 for a [k, d] codebook: one warp per code, 8 warps per block.
pub fn codebook_sqnorm_launch(norms: u64, codebook: u64, k: usize, d: usize) -> Launch {
    let cfg = LaunchCfg::linear(k.div_ceil(8).clamp(1, 65535) as u32, 256, 0);
    let args = vec![
        KArg::Ptr(norms),
        KArg::Ptr(codebook),
        KArg::U32(k as u32),
        KArg::U32(d as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "codebook_sqnorm_f32",
        cfg,
        args,
    }
}

/// Shapes of one argmin: z is [n, d], the codebook [k, d]; each row searches `span` codes from
/// its offset (`row_offset` = 0: every row from code 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgminShape {
    pub n: usize,
    pub k: usize,
    pub d: usize,
    pub span: usize,
}

/// `dist` may be 0 (not wanted). `norms` from `codebook_sqnorm_launch`.
pub fn codebook_argmin_launch(
    idx: u64,
    dist: u64,
    z: u64,
    codebook: u64,
    norms: u64,
    row_offset: u64,
    s: ArgminShape,
) -> Launch {
    search_launch("codebook_argmin_f32", [idx, dist], [z, codebook, norms, row_offset], s, None)
}

/// The search kernel `kernel` with its two outputs first (`codebook_argmin_f32`: idx, dist;
/// `codebook_argmin_split_f32`: part_score, part_idx, and `splits` ranges on grid y).
fn search_launch(kernel: &'static str, out: [u64; 2], inputs: [u64; 4], s: ArgminShape, splits: Option<usize>) -> Launch {
    let mut cfg = LaunchCfg::linear(s.n.div_ceil(ROWS_PER_BLOCK).max(1) as u32, THREADS, 0);
    cfg.grid.1 = splits.unwrap_or(1) as u32;
    let mut args: Vec<KArg> = out.into_iter().chain(inputs).map(KArg::Ptr).collect();
    args.extend([s.n, s.k, s.d, s.span].map(|v| KArg::U32(v as u32)));
    args.extend(splits.map(|v| KArg::U32(v as u32)));
    Launch {
        module: MODULE,
        kernel,
        cfg,
        args,
    }
}

/// How many code ranges the search splits into: enough for ~128 blocks of 32 rows (about one
/// per multiprocessor of a large GPU), at most one per 64-code tile of the span and at most 8.
/// At the model's batch 1 (1024 rows: 32 blocks, span 512) that is 4; from batch 4 on, 1.
pub fn argmin_splits(n: usize, span: usize) -> usize {
    let blocks = n.div_ceil(ROWS_PER_BLOCK).max(1);
    128usize.div_ceil(blocks).clamp(1, 8).min(span.div_ceil(64).max(1))
}

/// The two launches of the split search (`splits` >= 2): each code range's best per row into
/// `part = [part_score (f32), part_idx (u32)]`, both [splits, n], then their merge into `idx`,
/// `dist` (which may be 0).
#[allow(clippy::too_many_arguments)]
pub fn codebook_argmin_split_launches(
    part: [u64; 2],
    idx: u64,
    dist: u64,
    z: u64,
    codebook: u64,
    norms: u64,
    row_offset: u64,
    s: ArgminShape,
    splits: usize,
) -> [Launch; 2] {
    let search = search_launch("codebook_argmin_split_f32", part, [z, codebook, norms, row_offset], s, Some(splits));
    let merge = Launch {
        module: MODULE,
        kernel: "codebook_argmin_merge_f32",
        cfg: LaunchCfg::linear(s.n.div_ceil(8).clamp(1, 65535) as u32, 256, 0),
        args: vec![
            KArg::Ptr(idx),
            KArg::Ptr(dist),
            KArg::Ptr(part[0]),
            KArg::Ptr(part[1]),
            KArg::Ptr(z),
            KArg::U32(s.n as u32),
            KArg::U32(s.d as u32),
            KArg::U32(splits as u32),
        ],
    };
    [search, merge]
}

/// (indices as u32 [n], squared distances [n]) of the nearest code of every row of z.
/// `row_offset`: a u32 [n] buffer of first codes (None: every row searches 0..span).
pub fn codebook_argmin(
    z: &CudaStorage,
    codebook: &CudaStorage,
    row_offset: Option<&CudaStorage>,
    s: ArgminShape,
) -> Result<(CudaStorage, CudaStorage)> {
    check_f32("codebook_argmin", z, s.n * s.d)?;
    check_f32("codebook_argmin", codebook, s.k * s.d)?;
    u32_arg("codebook_argmin", s.n * s.d)?;
    u32_arg("codebook_argmin", s.k * s.d)?;
    if s.span == 0 || s.span > s.k {
        return Err(Error::shape(
            "codebook_argmin",
            format!("span {} with {} codes", s.span, s.k),
        ));
    }
    if let Some(off) = row_offset {
        if off.dtype() != DType::U32 || off.len() < s.n {
            return Err(Error::shape(
                "codebook_argmin",
                format!(
                    "row offsets must be u32 [{}], got {:?} [{}]",
                    s.n,
                    off.dtype(),
                    off.len()
                ),
            ));
        }
    }
    let dev = z.device();
    let norms = dev.alloc(DType::F32, s.k)?;
    let (idx, dist) = (dev.alloc(DType::U32, s.n)?, dev.alloc(DType::F32, s.n)?);
    let pcb = device_ptr(codebook, 0);
    run_on_device(
        dev,
        &codebook_sqnorm_launch(device_ptr(&norms, 0), pcb, s.k, s.d),
    )?;
    let poff = row_offset.map_or(0, |o| device_ptr(o, 0));
    let (pidx, pdist, pz, pnorms) = (device_ptr(&idx, 0), device_ptr(&dist, 0), device_ptr(z, 0), device_ptr(&norms, 0));
    let splits = argmin_splits(s.n, s.span);
    if splits == 1 {
        run_on_device(dev, &codebook_argmin_launch(pidx, pdist, pz, pcb, pnorms, poff, s))?;
        return Ok((idx, dist));
    }
    let (score, index) = (dev.alloc(DType::F32, splits * s.n)?, dev.alloc(DType::U32, splits * s.n)?);
    let part = [device_ptr(&score, 0), device_ptr(&index, 0)];
    for launch in codebook_argmin_split_launches(part, pidx, pdist, pz, pcb, pnorms, poff, s, splits) {
        run_on_device(dev, &launch)?;
    }
    Ok((idx, dist))
}
