//! Launchers for `kernels/softmax.cu`: softmax over the last dim of a dense [rows, cols] f32
//! matrix, forward and backward (from the forward output). One block per row.

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

pub fn softmax_fwd_launch(y: u64, x: u64, rows: usize, cols: usize) -> Launch {
    let args = vec![
        KArg::Ptr(y),
        KArg::Ptr(x),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "softmax_fwd_f32",
        cfg: cfg(rows, cols),
        args,
    }
}

pub fn softmax_bwd_launch(dx: u64, y: u64, dy: u64, rows: usize, cols: usize) -> Launch {
    let args = vec![
        KArg::Ptr(dx),
        KArg::Ptr(y),
        KArg::Ptr(dy),
        KArg::U32(rows as u32),
        KArg::U32(cols as u32),
    ];
    Launch {
        module: MODULE,
        kernel: "softmax_bwd_f32",
        cfg: cfg(rows, cols),
        args,
    }
}

pub fn softmax_fwd(x: &CudaStorage, rows: usize, cols: usize) -> Result<CudaStorage> {
    let n = rows * cols;
    check_f32("softmax", x, n)?;
    u32_arg("softmax", n)?;
    let y = x.device().alloc(DType::F32, n)?;
    run_on_device(
        x.device(),
        &softmax_fwd_launch(device_ptr(&y, 0), device_ptr(x, 0), rows, cols),
    )?;
    Ok(y)
}

pub fn softmax_bwd(
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
    let launch = softmax_bwd_launch(
        device_ptr(&dx, 0),
        device_ptr(y, 0),
        device_ptr(dy, 0),
        rows,
        cols,
    );
    run_on_device(y.device(), &launch)?;
    Ok(dx)
}
