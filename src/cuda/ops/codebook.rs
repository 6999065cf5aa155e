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
    let cfg = LaunchCfg::linear(s.n.div_ceil(ROWS_PER_BLOCK).max(1) as u32, THREADS, 0);
    let args = vec![
        KArg::Ptr(idx),
        KArg::Ptr(dist),
        KArg::Ptr(z),
        KArg::Ptr(codebook),
        KArg::Ptr(norms),
        KArg::Ptr(row_offset),
        KArg::U32(s.n as u32),
        KArg::U32(s.k as u32),
        KArg::U32(s.d as u32),
        KArg::U32(s.span as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "codebook_argmin_f32",
        cfg,
        args,
    }
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
    let launch = codebook_argmin_launch(
        device_ptr(&idx, 0),
        device_ptr(&dist, 0),
        device_ptr(z, 0),
        pcb,
        device_ptr(&norms, 0),
        poff,
        s,
    );
    run_on_device(dev, &launch)?;
    Ok((idx, dist))
}
