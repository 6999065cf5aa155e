//! Launchers for `kernels/image.cu`: patch unfold / fold (spec §1.1), nearest and bilinear
//! resize (PyTorch `F.interpolate`, spec §1.5) and 2-D max / average pooling, forward and
//! backward, on dense NCHW f32 buffers. Every kernel is one thread per output element
//! (grid-stride); each backward is a gather over the input gradient (deterministic, no atomics).
//! The params structs of `params/{patch,resize,pool}.rs` are passed by value, field by field in
//! their declared order (the kernel's structs mirror them).

use crate::cuda::launch::{check_f32, device_ptr, run_on_device, u32_arg, KArg, Launch, LaunchCfg};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::params::patch::PatchParams;
use crate::params::pool::Pool2dParams;
use crate::params::resize::ResizeParams;

use super::checks::check_u32;

const MODULE: &str = "image";
const THREADS: u32 = 256;
const MAX_BLOCKS: u32 = 8192;

/// A struct argument from its u32 fields in declaration order.
fn words(ws: &[u32]) -> KArg {
    KArg::Struct(bytemuck::cast_slice(ws).to_vec())
}

fn patch_arg(p: &PatchParams) -> KArg {
    words(&[p.batch, p.channels, p.height, p.width, p.patch])
}

fn resize_arg(p: &ResizeParams) -> KArg {
    words(&[p.planes, p.in_h, p.in_w, p.out_h, p.out_w, p.mode])
}

fn pool_arg(p: &Pool2dParams) -> KArg {
    words(&[
        p.planes,
        p.in_h,
        p.in_w,
        p.out_h,
        p.out_w,
        p.kernel,
        p.stride,
        p.pad,
        p.count_include_pad,
    ])
}

fn launch(kernel: &'static str, n: usize, args: Vec<KArg>) -> Launch {
    Launch {
        module: MODULE,
        kernel,
        cfg: LaunchCfg::for_elements(n, THREADS, MAX_BLOCKS),
        args,
    }
}

fn image_numel(p: &PatchParams) -> usize {
    let (b, c, h, w, _) = p.dims();
    b * c * h * w
}

/// `tokens [B, (H/p)*(W/p), C*p*p]` from `img [B, C, H, W]`.
pub fn patch_unfold_launch(tokens: u64, img: u64, p: &PatchParams) -> Launch {
    let args = vec![KArg::Ptr(tokens), KArg::Ptr(img), patch_arg(p)];
    launch("patch_unfold_f32", image_numel(p), args)
}

/// `img [B, C, H, W]` from `tokens [B, (H/p)*(W/p), C*p*p]`.
pub fn patch_fold_launch(img: u64, tokens: u64, p: &PatchParams) -> Launch {
    let args = vec![KArg::Ptr(img), KArg::Ptr(tokens), patch_arg(p)];
    launch("patch_fold_f32", image_numel(p), args)
}

/// `y [planes, out_h, out_w]` from `x [planes, in_h, in_w]`.
pub fn resize_fwd_launch(y: u64, x: u64, p: &ResizeParams) -> Launch {
    let n = p.planes as usize * p.out_plane();
    launch(
        "resize_fwd_f32",
        n,
        vec![KArg::Ptr(y), KArg::Ptr(x), resize_arg(p)],
    )
}

/// `dx [planes, in_h, in_w]` (overwritten) from `g [planes, out_h, out_w]`.
pub fn resize_bwd_launch(dx: u64, g: u64, p: &ResizeParams) -> Launch {
    let n = p.planes as usize * p.in_plane();
    launch(
        "resize_bwd_f32",
        n,
        vec![KArg::Ptr(dx), KArg::Ptr(g), resize_arg(p)],
    )
}

/// `y` and u32 `idx` (plane index of the first maximum), both `[planes, out_h, out_w]`.
pub fn max_pool_fwd_launch(y: u64, idx: u64, x: u64, p: &Pool2dParams) -> Launch {
    let n = p.planes as usize * p.out_plane();
    let args = vec![KArg::Ptr(y), KArg::Ptr(idx), KArg::Ptr(x), pool_arg(p)];
    launch("max_pool_fwd_f32", n, args)
}

/// `dx [planes, in_h, in_w]` (overwritten) from `g` and the forward's `idx`.
pub fn max_pool_bwd_launch(dx: u64, idx: u64, g: u64, p: &Pool2dParams) -> Launch {
    let n = p.planes as usize * p.in_plane();
    let args = vec![KArg::Ptr(dx), KArg::Ptr(idx), KArg::Ptr(g), pool_arg(p)];
    launch("max_pool_bwd_f32", n, args)
}

pub fn avg_pool_fwd_launch(y: u64, x: u64, p: &Pool2dParams) -> Launch {
    let n = p.planes as usize * p.out_plane();
    launch(
        "avg_pool_fwd_f32",
        n,
        vec![KArg::Ptr(y), KArg::Ptr(x), pool_arg(p)],
    )
}

pub fn avg_pool_bwd_launch(dx: u64, g: u64, p: &Pool2dParams) -> Launch {
    let n = p.planes as usize * p.in_plane();
    launch(
        "avg_pool_bwd_f32",
        n,
        vec![KArg::Ptr(dx), KArg::Ptr(g), pool_arg(p)],
    )
}

/// Runs a one-input kernel into a new f32 buffer of `n_out` elements after checking that the
/// input holds `n_in` f32 elements.
fn run_map(
    what: &'static str,
    x: &CudaStorage,
    n_in: usize,
    n_out: usize,
    make: impl FnOnce(u64, u64) -> Launch,
) -> Result<CudaStorage> {
    check_f32(what, x, n_in)?;
    u32_arg(what, n_in.max(n_out))?;
    let out = x.device().alloc(DType::F32, n_out)?;
    run_on_device(x.device(), &make(device_ptr(&out, 0), device_ptr(x, 0)))?;
    Ok(out)
}

fn check_patch(what: &'static str, p: &PatchParams) -> Result<()> {
    let (_, _, h, w, ps) = p.dims();
    if ps == 0 || h % ps != 0 || w % ps != 0 {
        return Err(Error::shape(
            what,
            format!("image {h}x{w} is not a whole number of {ps}x{ps} patches"),
        ));
    }
    Ok(())
}

/// Image `[B, C, H, W]` -> tokens `[B, (H/p)*(W/p), C*p*p]`.
pub fn patch_unfold(img: &CudaStorage, p: &PatchParams) -> Result<CudaStorage> {
    check_patch("patch_unfold", p)?;
    let n = image_numel(p);
    run_map("patch_unfold", img, n, n, |o, i| {
        patch_unfold_launch(o, i, p)
    })
}

/// Tokens `[B, (H/p)*(W/p), C*p*p]` -> image `[B, C, H, W]`.
pub fn patch_fold(tokens: &CudaStorage, p: &PatchParams) -> Result<CudaStorage> {
    check_patch("patch_fold", p)?;
    let n = image_numel(p);
    run_map("patch_fold", tokens, n, n, |o, t| {
        patch_fold_launch(o, t, p)
    })
}

fn check_resize(p: &ResizeParams) -> Result<()> {
    if p.in_plane() == 0 || p.out_plane() == 0 {
        return Err(Error::shape("resize", format!("empty image in {p:?}")));
    }
    Ok(())
}

/// `[planes, in_h, in_w]` -> `[planes, out_h, out_w]` (nearest or bilinear per `p.mode`).
pub fn resize_fwd(x: &CudaStorage, p: &ResizeParams) -> Result<CudaStorage> {
    check_resize(p)?;
    let planes = p.planes as usize;
    run_map(
        "resize",
        x,
        planes * p.in_plane(),
        planes * p.out_plane(),
        |y, x| resize_fwd_launch(y, x, p),
    )
}

/// Input gradient `[planes, in_h, in_w]` from the output gradient `[planes, out_h, out_w]`.
pub fn resize_bwd(g: &CudaStorage, p: &ResizeParams) -> Result<CudaStorage> {
    check_resize(p)?;
    let planes = p.planes as usize;
    run_map(
        "resize backward",
        g,
        planes * p.out_plane(),
        planes * p.in_plane(),
        |dx, g| resize_bwd_launch(dx, g, p),
    )
}

fn check_pool(what: &'static str, p: &Pool2dParams) -> Result<()> {
    if p.kernel == 0 || p.stride == 0 || p.pad > p.kernel / 2 || p.out_plane() == 0 {
        return Err(Error::shape(what, format!("invalid pooling {p:?}")));
    }
    Ok(())
}

/// Max pooling: (f32 values, u32 plane index of each window's first maximum), both
/// `[planes, out_h, out_w]`.
pub fn max_pool_fwd(x: &CudaStorage, p: &Pool2dParams) -> Result<(CudaStorage, CudaStorage)> {
    const OP: &str = "max_pool2d";
    check_pool(OP, p)?;
    let (n_in, n_out) = (
        p.planes as usize * p.in_plane(),
        p.planes as usize * p.out_plane(),
    );
    check_f32(OP, x, n_in)?;
    u32_arg(OP, n_in.max(n_out))?;
    let dev = x.device();
    let (y, idx) = (dev.alloc(DType::F32, n_out)?, dev.alloc(DType::U32, n_out)?);
    let l = max_pool_fwd_launch(device_ptr(&y, 0), device_ptr(&idx, 0), device_ptr(x, 0), p);
    run_on_device(dev, &l)?;
    Ok((y, idx))
}

/// Max-pool input gradient from `g` and the forward's u32 `idx` (both `[planes, out_h, out_w]`).
pub fn max_pool_bwd(idx: &CudaStorage, g: &CudaStorage, p: &Pool2dParams) -> Result<CudaStorage> {
    const OP: &str = "max_pool2d backward";
    check_pool(OP, p)?;
    let n_out = p.planes as usize * p.out_plane();
    check_u32(OP, idx, n_out)?;
    run_map(OP, g, n_out, p.planes as usize * p.in_plane(), |dx, g| {
        max_pool_bwd_launch(dx, device_ptr(idx, 0), g, p)
    })
}

pub fn avg_pool_fwd(x: &CudaStorage, p: &Pool2dParams) -> Result<CudaStorage> {
    check_pool("avg_pool2d", p)?;
    let planes = p.planes as usize;
    run_map(
        "avg_pool2d",
        x,
        planes * p.in_plane(),
        planes * p.out_plane(),
        |y, x| avg_pool_fwd_launch(y, x, p),
    )
}

pub fn avg_pool_bwd(g: &CudaStorage, p: &Pool2dParams) -> Result<CudaStorage> {
    check_pool("avg_pool2d backward", p)?;
    let planes = p.planes as usize;
    run_map(
        "avg_pool2d backward",
        g,
        planes * p.out_plane(),
        planes * p.in_plane(),
        |dx, g| avg_pool_bwd_launch(dx, g, p),
    )
}
