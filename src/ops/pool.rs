//! 2-D max and average pooling of the last two dims of an f32 tensor `[..., H, W]` (NCHW),
//! square kernel / stride / padding, PyTorch semantics (`ceil_mode=False`,
//! `out = (in + 2*pad - kernel) / stride + 1`, padding at most kernel/2), forward and backward.
//! Max pooling: the first maximum of a window wins; `max_pool2d_with_indices` returns its index
//! within the `H x W` plane (u32, as PyTorch's `return_indices`) for the backward. Average
//! pooling: `count_include_pad` as PyTorch (true = divide by the padded window size).

use super::prep::{check_u32_len, dense_f32, dense_u32, expect_shape};
use crate::cpu::ops::pool as cpu;
use crate::cuda::ops::image as cuda;
use crate::error::{Error, Result};
use crate::params::pool::Pool2dParams;
use crate::shape::numel;
use crate::storage::Storage;
use crate::tensor::Tensor;

/// Params and output shape of pooling `in_shape` (`[..., H, W]`).
fn params(
    op: &'static str,
    in_shape: &[usize],
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
) -> Result<(Pool2dParams, Vec<usize>)> {
    if in_shape.len() < 2 {
        return Err(Error::shape(
            op,
            format!("needs [..., H, W], got {in_shape:?}"),
        ));
    }
    if kernel == 0 || stride == 0 {
        return Err(Error::msg(format!(
            "{op}: kernel ({kernel}) and stride ({stride}) must be >= 1"
        )));
    }
    if pad > kernel / 2 {
        return Err(Error::msg(format!(
            "{op}: padding {pad} must be at most half the kernel {kernel}"
        )));
    }
    let (lead, hw) = in_shape.split_at(in_shape.len() - 2);
    let (h, w) = (hw[0], hw[1]);
    if h + 2 * pad < kernel || w + 2 * pad < kernel {
        return Err(Error::shape(
            op,
            format!("kernel {kernel} larger than the padded input {h}x{w} (+{pad})"),
        ));
    }
    let (oh, ow) = (
        (h + 2 * pad - kernel) / stride + 1,
        (w + 2 * pad - kernel) / stride + 1,
    );
    let mut out_shape = lead.to_vec();
    out_shape.extend([oh, ow]);
    check_u32_len(op, numel(in_shape).max(numel(&out_shape)))?;
    let p = Pool2dParams {
        planes: numel(lead) as u32,
        in_h: h as u32,
        in_w: w as u32,
        out_h: oh as u32,
        out_w: ow as u32,
        kernel: kernel as u32,
        stride: stride as u32,
        pad: pad as u32,
        count_include_pad: count_include_pad as u32,
    };
    Ok((p, out_shape))
}

/// Max pooling; also returns the u32 plane index of each output's (first) maximum.
pub fn max_pool2d_with_indices(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<(Tensor, Tensor)> {
    const OP: &str = "max_pool2d";
    let (p, out_shape) = params(OP, x.shape(), kernel, stride, pad, true)?;
    let x = dense_f32(OP, x)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let n = numel(&out_shape);
            let (mut y, mut idx) = (vec![0f32; n], vec![0u32; n]);
            cpu::max_pool2d_fwd_fast(&p, x.cpu_f32()?, &mut y, &mut idx);
            Ok((
                Tensor::from_vec(y, &out_shape)?,
                Tensor::from_u32(idx, &out_shape)?,
            ))
        }
        Storage::Cuda(_) => {
            let (y, idx) = cuda::max_pool_fwd(x.cuda_dense()?, &p)?;
            Ok((Tensor::from_cuda(y, &out_shape)?, Tensor::from_cuda(idx, &out_shape)?))
        }
    }
}

/// Max pooling (padding never wins).
pub fn max_pool2d(x: &Tensor, kernel: usize, stride: usize, pad: usize) -> Result<Tensor> {
    Ok(max_pool2d_with_indices(x, kernel, stride, pad)?.0)
}

/// Gradient of the input (shape `in_shape`) of max pooling from the output gradient `g` and the
/// forward's `indices`.
pub fn max_pool2d_backward(
    g: &Tensor,
    indices: &Tensor,
    in_shape: &[usize],
    kernel: usize,
    stride: usize,
    pad: usize,
) -> Result<Tensor> {
    const OP: &str = "max_pool2d backward";
    let (p, out_shape) = params(OP, in_shape, kernel, stride, pad, true)?;
    expect_shape(OP, "gradient", g, &out_shape)?;
    expect_shape(OP, "indices", indices, &out_shape)?;
    super::check_same_device(OP, g, indices)?;
    let (g, idx) = (dense_f32(OP, g)?, dense_u32(OP, indices)?);
    match (g.storage(), idx.storage()) {
        (Storage::Cpu(_), Storage::Cpu(_)) => {
            let ids = idx.cpu_u32()?;
            if let Some(bad) = cpu::first_index_outside(ids, p.in_plane()) {
                return Err(Error::shape(
                    OP,
                    format!("index {bad} outside the {}x{} plane", p.in_h, p.in_w),
                ));
            }
            let mut dx = vec![0f32; numel(in_shape)];
            cpu::max_pool2d_bwd(&p, ids, g.cpu_f32()?, &mut dx);
            Tensor::from_vec(dx, in_shape)
        }
        _ => Tensor::from_cuda(cuda::max_pool_bwd(idx.cuda_dense()?, g.cuda_dense()?, &p)?, in_shape),
    }
}

/// Average pooling.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d";
    let (p, out_shape) = params(OP, x.shape(), kernel, stride, pad, count_include_pad)?;
    let x = dense_f32(OP, x)?;
    match x.storage() {
        Storage::Cpu(_) => {
            let mut y = vec![0f32; numel(&out_shape)];
            cpu::avg_pool2d_fwd_fast(&p, x.cpu_f32()?, &mut y);
            Tensor::from_vec(y, &out_shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::avg_pool_fwd(x.cuda_dense()?, &p)?, &out_shape),
    }
}

/// Gradient of the input (shape `in_shape`) of average pooling from the output gradient `g`.
pub fn avg_pool2d_backward(
    g: &Tensor,
    in_shape: &[usize],
    kernel: usize,
    stride: usize,
    pad: usize,
    count_include_pad: bool,
) -> Result<Tensor> {
    const OP: &str = "avg_pool2d backward";
    let (p, out_shape) = params(OP, in_shape, kernel, stride, pad, count_include_pad)?;
    expect_shape(OP, "gradient", g, &out_shape)?;
    let g = dense_f32(OP, g)?;
    match g.storage() {
        Storage::Cpu(_) => {
            let mut dx = vec![0f32; numel(in_shape)];
            cpu::avg_pool2d_bwd_fast(&p, g.cpu_f32()?, &mut dx);
            Tensor::from_vec(dx, in_shape)
        }
        Storage::Cuda(_) => Tensor::from_cuda(cuda::avg_pool_bwd(g.cuda_dense()?, &p)?, in_shape),
    }
}
