//! Launchers for `kernels/unary.cu`: every element-wise unary op of `params::unary::UnaryOp`
//! (the same params struct the CPU loops take), forward and backward, on dense f32 buffers.

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::Result;
use crate::params::unary::UnaryParams;

const MODULE: &str = "unary";
const THREADS: u32 = 256;
const MAX_BLOCKS: u32 = 4096;

fn cfg(n: u32) -> LaunchCfg {
    LaunchCfg::for_elements(n as usize, THREADS, MAX_BLOCKS)
}

pub fn unary_fwd_launch(y: u64, x: u64, p: &UnaryParams) -> Launch {
    Launch {
        module: MODULE,
        kernel: "unary_fwd_f32",
        cfg: cfg(p.n),
        args: vec![KArg::Ptr(y), KArg::Ptr(x), KArg::pod(p)],
    }
}

pub fn unary_bwd_launch(dx: u64, x: u64, y: u64, g: u64, p: &UnaryParams) -> Launch {
    Launch {
        module: MODULE,
        kernel: "unary_bwd_f32",
        cfg: cfg(p.n),
        args: vec![
            KArg::Ptr(dx),
            KArg::Ptr(x),
            KArg::Ptr(y),
            KArg::Ptr(g),
            KArg::pod(p),
        ],
    }
}

/// `y = f(x)` over the first `p.n` elements of `x`.
pub fn unary_fwd(x: &CudaStorage, p: &UnaryParams) -> Result<CudaStorage> {
    let n = p.n as usize;
    check_f32(p.kind().name(), x, n)?;
    let y = x.device().alloc(DType::F32, n)?;
    run_on_device(
        x.device(),
        &unary_fwd_launch(device_ptr(&y, 0), device_ptr(x, 0), p),
    )?;
    Ok(y)
}

/// `dx = g * f'(x)` from the input `x`, the forward output `y` and the output gradient `g`.
pub fn unary_bwd(
    x: &CudaStorage,
    y: &CudaStorage,
    g: &CudaStorage,
    p: &UnaryParams,
) -> Result<CudaStorage> {
    let n = p.n as usize;
    for t in [x, y, g] {
        check_f32(p.kind().name(), t, n)?;
    }
    let dx = x.device().alloc(DType::F32, n)?;
    let launch = unary_bwd_launch(
        device_ptr(&dx, 0),
        device_ptr(x, 0),
        device_ptr(y, 0),
        device_ptr(g, 0),
        p,
    );
    run_on_device(x.device(), &launch)?;
    Ok(dx)
}
