//! Launchers for `kernels/layernorm.cu`: LayerNorm over the last dim of a dense [rows, cols] f32
//! matrix (spec §3.2), forward (optionally saving mean and 1/std per row) and backward (dx from
//! one kernel, dgamma/dbeta from a deterministic column reduction).

use crate::cuda::launch::{
    check_f32, device_ptr, row_block_threads, row_blocks, run_on_device, u32_arg, KArg, Launch,
    LaunchCfg,
};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::Result;

const MODULE: &str = "layernorm";

/// Device addresses (0 = absent) of the optional layernorm buffers.
#[derive(Clone, Copy, Debug, Default)]
pub struct LnPtrs {
    pub gamma: u64,
    pub beta: u64,
    pub mean: u64,
    pub rstd: u64,
}

fn row_cfg(rows: usize, cols: usize) -> LaunchCfg {
    LaunchCfg::linear(row_blocks(rows), row_block_threads(cols), 0)
}

/// `p.mean`/`p.rstd` receive the statistics when non-zero.
pub fn layernorm_fwd_launch(
    y: u64,
    x: u64,
    p: LnPtrs,
    rows: usize,
    cols: usize,
    eps: f32,
) -> Launch {
    let args = vec![
        KArg::Ptr(y),
        KArg::Ptr(p.mean),
        KArg::Ptr(p.rstd),
        KArg::Ptr(x),
        KArg::Ptr(p.gamma),
        KArg::Ptr(p.beta),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
        KArg::F32(eps),
    ];
    Launch {
        module: MODULE,
        kernel: "layernorm_fwd_f32",
        cfg: row_cfg(rows, cols),
        args,
    }
}

/// Needs `p.mean` and `p.rstd` from the forward pass; `p.beta` is unused.
pub fn layernorm_bwd_dx_launch(
    dx: u64,
    dy: u64,
    x: u64,
    p: LnPtrs,
    rows: usize,
    cols: usize,
) -> Launch {
    let args = vec![
        KArg::Ptr(dx),
        KArg::Ptr(dy),
        KArg::Ptr(x),
        KArg::Ptr(p.mean),
        KArg::Ptr(p.rstd),
        KArg::Ptr(p.gamma),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "layernorm_bwd_dx_f32",
        cfg: row_cfg(rows, cols),
        args,
    }
}

/// Blocks of 32 x 32 threads, one block per 32 columns.
pub fn layernorm_bwd_params_launch(
    dgamma: u64,
    dbeta: u64,
    dy: u64,
    x: u64,
    p: LnPtrs,
    rows: usize,
    cols: usize,
) -> Launch {
    let cfg = LaunchCfg {
        grid: (cols.div_ceil(32).max(1) as u32, 1, 1),
        block: (32, 32, 1),
        smem_bytes: 0,
    };
    let args = vec![
        KArg::Ptr(dgamma),
        KArg::Ptr(dbeta),
        KArg::Ptr(dy),
        KArg::Ptr(x),
        KArg::Ptr(p.mean),
        KArg::Ptr(p.rstd),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "layernorm_bwd_params_f32",
        cfg,
        args,
    }
}

fn opt_ptr(s: Option<&CudaStorage>) -> u64 {
    s.map_or(0, |s| device_ptr(s, 0))
}

/// Output of the forward pass: y, and (mean, rstd) per row when requested.
pub struct LayerNormOut {
    pub y: CudaStorage,
    pub stats: Option<(CudaStorage, CudaStorage)>,
}

pub fn layernorm_fwd(
    x: &CudaStorage,
    gamma: Option<&CudaStorage>,
    beta: Option<&CudaStorage>,
    rows: usize,
    cols: usize,
    eps: f32,
    save_stats: bool,
) -> Result<LayerNormOut> {
    let n = rows * cols;
    check_f32("layernorm", x, n)?;
    u32_arg("layernorm", n)?;
    for p in [gamma, beta].into_iter().flatten() {
        check_f32("layernorm", p, cols)?;
    }
    let dev = x.device();
    let y = dev.alloc(DType::F32, n)?;
    let stats = if save_stats {
        Some((dev.alloc(DType::F32, rows)?, dev.alloc(DType::F32, rows)?))
    } else {
        None
    };
    let p = LnPtrs {
        gamma: opt_ptr(gamma),
        beta: opt_ptr(beta),
        mean: opt_ptr(stats.as_ref().map(|s| &s.0)),
        rstd: opt_ptr(stats.as_ref().map(|s| &s.1)),
    };
    run_on_device(
        dev,
        &layernorm_fwd_launch(device_ptr(&y, 0), device_ptr(x, 0), p, rows, cols, eps),
    )?;
    Ok(LayerNormOut { y, stats })
}

/// `add_layernorm_fwd_f32` (`y` f32) or, with `y`'s dtype bf16, `add_layernorm_fwd_bf16`:
/// `s = x + a`, `y = LayerNorm(s)` (`p.mean`, `p.rstd` unused).
pub fn add_layernorm_fwd_launch(s: u64, (y, y_dtype): (u64, DType), x: u64, a: u64, p: LnPtrs, (rows, cols): (usize, usize), eps: f32) -> Launch {
    let args = vec![
        KArg::Ptr(s),
        KArg::Ptr(y),
        KArg::Ptr(x),
        KArg::Ptr(a),
        KArg::Ptr(p.gamma),
        KArg::Ptr(p.beta),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
        KArg::F32(eps),
    ];
    let kernel = if y_dtype == DType::BF16 { "add_layernorm_fwd_bf16" } else { "add_layernorm_fwd_f32" };
    Launch { module: MODULE, kernel, cfg: row_cfg(rows, cols), args }
}

/// `(s, y)`: the residual sum `s = x + a` (f32) and `y = LayerNorm(s)` (f32, or rounded to bf16
/// with `y_dtype` bf16) of dense `[rows, cols]` inputs, in one launch (inference: no statistics).
pub fn add_layernorm_fwd(
    x: &CudaStorage,
    a: &CudaStorage,
    gamma: &CudaStorage,
    beta: &CudaStorage,
    (rows, cols): (usize, usize),
    eps: f32,
    y_dtype: DType,
) -> Result<(CudaStorage, CudaStorage)> {
    if !matches!(y_dtype, DType::F32 | DType::BF16) {
        return Err(crate::error::Error::DType { op: "add_layernorm (output: f32 or bf16)", dtype: y_dtype });
    }
    let n = rows * cols;
    for t in [x, a] {
        check_f32("add_layernorm", t, n)?;
    }
    u32_arg("add_layernorm", n)?;
    for p in [gamma, beta] {
        check_f32("add_layernorm", p, cols)?;
    }
    let dev = x.device();
    let (s, y) = (dev.alloc(DType::F32, n)?, dev.alloc(y_dtype, n)?);
    let p = LnPtrs { gamma: device_ptr(gamma, 0), beta: device_ptr(beta, 0), ..LnPtrs::default() };
    let launch = add_layernorm_fwd_launch(device_ptr(&s, 0), (device_ptr(&y, 0), y_dtype), device_ptr(x, 0), device_ptr(a, 0), p, (rows, cols), eps);
    run_on_device(dev, &launch)?;
    Ok((s, y))
}

/// (dx, dgamma, dbeta) from dy, the forward input x and the saved (mean, rstd).
pub fn layernorm_bwd(
    dy: &CudaStorage,
    x: &CudaStorage,
    stats: (&CudaStorage, &CudaStorage),
    gamma: Option<&CudaStorage>,
    rows: usize,
    cols: usize,
) -> Result<(CudaStorage, CudaStorage, CudaStorage)> {
    let n = rows * cols;
    for t in [dy, x] {
        check_f32("layernorm_backward", t, n)?;
    }
    for t in [stats.0, stats.1] {
        check_f32("layernorm_backward", t, rows)?;
    }
    if let Some(g) = gamma {
        check_f32("layernorm_backward", g, cols)?;
    }
    u32_arg("layernorm_backward", n)?;
    let dev = dy.device();
    let (dx, dgamma, dbeta) = (
        dev.alloc(DType::F32, n)?,
        dev.alloc(DType::F32, cols)?,
        dev.alloc(DType::F32, cols)?,
    );
    let p = LnPtrs {
        gamma: opt_ptr(gamma),
        beta: 0,
        mean: device_ptr(stats.0, 0),
        rstd: device_ptr(stats.1, 0),
    };
    let (pdy, px) = (device_ptr(dy, 0), device_ptr(x, 0));
    run_on_device(
        dev,
        &layernorm_bwd_dx_launch(device_ptr(&dx, 0), pdy, px, p, rows, cols),
    )?;
    run_on_device(
        dev,
        &layernorm_bwd_params_launch(
            device_ptr(&dgamma, 0),
            device_ptr(&dbeta, 0),
            pdy,
            px,
            p,
            rows,
            cols,
        ),
    )?;
    Ok((dx, dgamma, dbeta))
}
