//! 2-D resize of the last two dims of an f32 tensor `[..., H, W]` (NCHW images, masks) with
//! PyTorch `F.interpolate` semantics: `resize_nearest` (`mode='nearest'`: source index
//! `floor(i * in/out)`, i.e. the top-left pixel of each block when downsampling — spec §1.5, the
//! decoder's mask pyramid of §2.4) and `resize_bilinear` (`align_corners=False`, no antialias),
//! plus `resize_backward` for both.

use super::prep::{check_u32_len, dense_f32, expect_shape};
use crate::cpu::ops::resize as cpu;
use crate::cuda::ops::image as cuda;
use crate::error::{Error, Result};
use crate::params::resize::{ResizeMode, ResizeParams};
use crate::shape::numel;
use crate::storage::Storage;
use crate::tensor::Tensor;

fn op_name(mode: ResizeMode) -> &'static str {
    match mode {
        ResizeMode::Nearest => "resize_nearest",
        ResizeMode::Bilinear => "resize_bilinear",
    }
}

/// Params and the output shape for resizing `in_shape` to `out_hw`.
fn params(
    op: &'static str,
    mode: ResizeMode,
    in_shape: &[usize],
    out_hw: (usize, usize),
) -> Result<(ResizeParams, Vec<usize>)> {
    if in_shape.len() < 2 {
        return Err(Error::shape(
            op,
            format!("needs [..., H, W], got {in_shape:?}"),
        ));
    }
    let (lead, hw) = in_shape.split_at(in_shape.len() - 2);
    if hw.contains(&0) || out_hw.0 == 0 || out_hw.1 == 0 {
        return Err(Error::shape(
            op,
            format!("empty image: {in_shape:?} -> {out_hw:?}"),
        ));
    }
    let mut out_shape = lead.to_vec();
    out_shape.extend([out_hw.0, out_hw.1]);
    check_u32_len(op, numel(in_shape).max(numel(&out_shape)))?;
    Ok((
        ResizeParams::new(mode, numel(lead), (hw[0], hw[1]), out_hw),
        out_shape,
    ))
}

/// Resize `[..., H, W]` to `[..., out_h, out_w]`.
pub fn resize(x: &Tensor, mode: ResizeMode, out_hw: (usize, usize)) -> Result<Tensor> {
    let op = op_name(mode);
    let (p, out_shape) = params(op, mode, x.shape(), out_hw)?;
    let x = dense_f32(op, x)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let mut y = vec![0f32; numel(&out_shape)];
            cpu::resize_fwd_fast(&p, x.cpu_f32()?, &mut y);
            Tensor::from_vec(y, &out_shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::resize_fwd(x.cuda_dense()?, &p)?, &out_shape),
    }
}

/// PyTorch `interpolate(mode='nearest')`.
pub fn resize_nearest(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    resize(x, ResizeMode::Nearest, out_hw)
}

/// PyTorch `interpolate(mode='bilinear', align_corners=False)`.
pub fn resize_bilinear(x: &Tensor, out_hw: (usize, usize)) -> Result<Tensor> {
    resize(x, ResizeMode::Bilinear, out_hw)
}

/// Gradient of the input of `resize(x, mode, ..)` with `x` of shape `in_shape`, from the output
/// gradient `g`.
pub fn resize_backward(g: &Tensor, mode: ResizeMode, in_shape: &[usize]) -> Result<Tensor> {
    let op = op_name(mode);
    let Some(&[gh, gw]) = g.shape().get(g.rank().saturating_sub(2)..) else {
        return Err(Error::shape(
            op,
            format!("gradient must be [..., H, W], got {:?}", g.shape()),
        ));
    };
    let (p, out_shape) = params(op, mode, in_shape, (gh, gw))?;
    expect_shape(op, "backward: gradient", g, &out_shape)?;
    let g = dense_f32(op, g)?;
    match g.storage() {
        Storage::Cpu(_) => {
            let mut dx = vec![0f32; numel(in_shape)];
            cpu::resize_bwd_fast(&p, g.cpu_f32()?, &mut dx);
            Tensor::from_vec(dx, in_shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::resize_bwd(g.cuda_dense()?, &p)?, in_shape),
    }
}
