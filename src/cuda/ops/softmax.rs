//! Launchers for `kernels/softmax.cu`: softmax over the last dim of a dense [rows, cols] f32
//! matrix, and log-softmax, forward and backward (from the forward output). One block per row.

use crate::cuda::launch::{
    check_f32, device_ptr, row_block_threads, row_blocks, run_on_device, u32_arg, KArg, Launch,
    LaunchCfg,
};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::Result;

const MODULE: &str = "softmax";

fn cfg(rows: usize, cols: usize) -> LaunchCfg {
    LaunchCfg::linear(row_blocks(rows), row_block_threads(cols), 0)
}

/// Softmax (`log = false`) or log-softmax (`log = true`) over each row.
pub fn softmax_fwd_launch(y: u64, x: u64, rows: usize, cols: usize) -> Launch {
    softmax_kind_fwd_launch(false, y, x, rows, cols)
}

pub fn softmax_kind_fwd_launch(log: bool, y: u64, x: u64, rows: usize, cols: usize) -> Launch {
    let args = vec![
        KArg::Ptr(y),
        KArg::Ptr(x),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: if log {
            "log_softmax_fwd_f32"
        } else {
            "softmax_fwd_f32"
        },
        cfg: cfg(rows, cols),
        args,
    }
}

pub fn softmax_bwd_launch(dx: u64, y: u64, dy: u64, rows: usize, cols: usize) -> Launch {
    softmax_kind_bwd_launch(false, dx, y, dy, rows, cols)
}

pub fn softmax_kind_bwd_launch(
    log: bool,
    dx: u64,
    y: u64,
    dy: u64,
    rows: usize,
    cols: usize,
) -> Launch {
    let args = vec![
        KArg::Ptr(dx),
        KArg::Ptr(y),
        KArg::Ptr(dy),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: if log {
            "log_softmax_bwd_f32"
        } else {
            "softmax_bwd_f32"
        },
        cfg: cfg(rows, cols),
        args,
    }
}

pub fn softmax_fwd(x: &CudaStorage, rows: usize, cols: usize) -> Result<CudaStorage> {
    softmax_kind_fwd(false, x, rows, cols)
}

/// Softmax or log-softmax over the rows of a dense [rows, cols] buffer.
pub fn softmax_kind_fwd(log: bool, x: &CudaStorage, rows: usize, cols: usize) -> Result<CudaStorage> {
    let n = rows * cols;
    check_f32("softmax", x, n)?;
    u32_arg("softmax", n)?;
    let y = x.device().alloc(DType::F32, n)?;
    run_on_device(
        x.device(),
        &softmax_kind_fwd_launch(log, device_ptr(&y, 0), device_ptr(x, 0), rows, cols),
    )?;
    Ok(y)
}

pub fn softmax_bwd(
    y: &CudaStorage,
    dy: &CudaStorage,
    rows: usize,
    cols: usize,
) -> Result<CudaStorage> {
    softmax_kind_bwd(false, y, dy, rows, cols)
}

/// Backward of softmax or log-softmax from the forward output `y` and the output gradient `dy`.
pub fn softmax_kind_bwd(
    log: bool,
    y: &CudaStorage,
    dy: &CudaStorage,
    rows: usize,
    cols: usize,
) -> Result<CudaStorage> {
    let n = rows * cols;
    check_f32("softmax_backward", y, n)?;
    check_f32("softmax_backward", dy, n)?;
    u32_arg("softmax_backward", n)?;
    let dx = y.device().alloc(DType::F32, n)?;
    let launch = softmax_kind_bwd_launch(
        log,
        device_ptr(&dx, 0),
        device_ptr(y, 0),
        device_ptr(dy, 0),
        rows,
        cols,
    );
    run_on_device(y.device(), &launch)?;
    Ok(dx)
}
