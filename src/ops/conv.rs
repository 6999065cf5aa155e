//! Tensor-level convolutions on NCHW f32 tensors (zero padding, groups 1, square stride and
//! padding), forward and backward:
//! * `conv2d(x [N, C, H, W], w [O, C, kh, kw], b [O], stride, padding) -> [N, O, OH, OW]`,
//!   `OH = (H + 2p - kh) / stride + 1` (spec §2.4 decoder, §4.1 FDM, §6.5 discriminator);
//! * `conv_transpose2d(x [N, C, H, W], w [C, O, kh, kw] (in before out: PyTorch's layout,
//!   spec §0), b [O], stride, padding) -> [N, O, (H-1)*stride - 2p + kh, ...]`
//!   (the decoder's 4x4 stride-2 upsampling, spec §2.4);
//! * backward pieces (input, weight, bias gradients) and `*_backward` returning all three.
//!
//! Shapes are checked here with errors naming the problem; the loops live in `cpu::ops`.

use super::matmul::check_f32_same_device;
use crate::cuda::ops::conv2d as cuda_conv;
use crate::cuda::ops::conv2d_backward as cuda_convb;
use crate::cuda::ops::conv_transpose2d as cuda_convt;
use crate::cpu::ops::{conv2d as cpu_conv, conv_transpose2d as cpu_convt};
use crate::error::{Error, Result};
use crate::params::conv2d::Conv2dParams;
use crate::params::conv_transpose2d::ConvTranspose2dParams;
use crate::shape::numel;
use crate::tensor::Tensor;

/// The four dims of an NCHW shape, or an error naming `what`.
fn dims4(op: &'static str, what: &str, layout: &str, shape: &[usize]) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| Error::shape(op, format!("{what} must be {layout} (rank 4), got {shape:?}")))
}

/// Checks shared by both convolutions: stride, kernel and spatial sizes, bias length.
fn check_geometry(op: &'static str, x: [usize; 4], kernel: (usize, usize), stride: usize, bias: Option<&[usize]>, out_channels: usize) -> Result<()> {
    if stride == 0 {
        return Err(Error::shape(op, "stride must be >= 1"));
    }
    if kernel.0 == 0 || kernel.1 == 0 {
        return Err(Error::shape(op, format!("kernel size {}x{} is empty", kernel.0, kernel.1)));
    }
    if x[2] == 0 || x[3] == 0 {
        return Err(Error::shape(op, format!("input spatial size {}x{} is empty", x[2], x[3])));
    }
    match bias {
        Some(b) if b != [out_channels] => Err(Error::shape(op, format!("bias must be [{out_channels}] (out channels), got {b:?}"))),
        _ => Ok(()),
    }
}

/// Conv2d params from shapes, with every check.
fn conv2d_params(op: &'static str, x_shape: &[usize], w_shape: &[usize], bias: Option<&[usize]>, stride: usize, padding: usize) -> Result<Conv2dParams> {
    let x = dims4(op, "input", "[N, C, H, W]", x_shape)?;
    let [o, c, kh, kw] = dims4(op, "weight", "[out, in, kh, kw]", w_shape)?;
    if x[1] != c {
        return Err(Error::shape(op, format!("input has {} channels but weight [out, in, kh, kw] = {w_shape:?} expects {c}", x[1])));
    }
    check_geometry(op, x, (kh, kw), stride, bias, o)?;
    let (ph, pw) = (x[2] + 2 * padding, x[3] + 2 * padding);
    if kh > ph || kw > pw {
        return Err(Error::shape(op, format!("kernel {kh}x{kw} larger than padded input {ph}x{pw} (input {}x{}, padding {padding})", x[2], x[3])));
    }
    Ok(Conv2dParams::new(x[0], c, (x[2], x[3]), o, (kh, kw), stride, padding, bias.is_some()))
}

/// ConvTranspose2d params from shapes, with every check.
fn conv_transpose2d_params(op: &'static str, x_shape: &[usize], w_shape: &[usize], bias: Option<&[usize]>, stride: usize, padding: usize) -> Result<ConvTranspose2dParams> {
    let x = dims4(op, "input", "[N, C, H, W]", x_shape)?;
    let [c, o, kh, kw] = dims4(op, "weight", "[in, out, kh, kw]", w_shape)?;
    if x[1] != c {
        return Err(Error::shape(op, format!("input has {} channels but weight [in, out, kh, kw] = {w_shape:?} expects {c}", x[1])));
    }
    check_geometry(op, x, (kh, kw), stride, bias, o)?;
    let full = |len: usize, k: usize| (len - 1) * stride + k;
    if full(x[2], kh) <= 2 * padding || full(x[3], kw) <= 2 * padding {
        return Err(Error::shape(op, format!("padding {padding} too large: output of input {}x{}, kernel {kh}x{kw}, stride {stride} would be empty", x[2], x[3])));
    }
    Ok(ConvTranspose2dParams::new(x[0], c, (x[2], x[3]), o, (kh, kw), stride, padding, bias.is_some()))
}

fn check_grad_shape(op: &'static str, grad_out: &Tensor, want: [usize; 4]) -> Result<()> {
    if grad_out.shape() != want {
        return Err(Error::shape(op, format!("grad_out {:?} does not match the output shape {want:?}", grad_out.shape())));
    }
    Ok(())
}

fn conv_out_shape(p: &Conv2dParams) -> [usize; 4] {
    [p.batch, p.out_channels, p.out_h, p.out_w].map(|d| d as usize)
}

fn convt_out_shape(p: &ConvTranspose2dParams) -> [usize; 4] {
    [p.batch, p.out_channels, p.out_h, p.out_w].map(|d| d as usize)
}

/// The CUDA launchers' description of a checked Conv2d (no dilation).
fn cuda_conv_params(x_shape: &[usize], w_shape: &[usize], stride: usize, padding: usize) -> Result<cuda_conv::Conv2dParams> {
    let four = |s: &[usize]| -> [usize; 4] { s.try_into().expect("4-D (checked)") };
    cuda_conv::Conv2dParams::new(four(x_shape), four(w_shape), (stride, stride), (padding, padding), (1, 1))
}

/// The CUDA launchers' description of a checked ConvTranspose2d.
fn cuda_convt_shape(x_shape: &[usize], w_shape: &[usize], stride: usize, padding: usize) -> Result<cuda_convt::ConvTranspose2dShape> {
    let four = |s: &[usize]| -> [usize; 4] { s.try_into().expect("4-D (checked)") };
    cuda_convt::ConvTranspose2dShape::new(four(x_shape), four(w_shape), (stride, stride), (padding, padding))
}

/// Conv2d: `x [N, C, H, W]`, `w [O, C, kh, kw]`, optional `b [O]` -> `[N, O, OH, OW]`.
pub fn conv2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let p = conv2d_params("conv2d", x.shape(), w.shape(), b.map(|b| b.shape()), stride, padding)?;
    let mut inputs = vec![x, w];
    inputs.extend(b);
    check_f32_same_device("conv2d", &inputs)?;
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    let shape = conv_out_shape(&p);
    if !super::is_cpu(&x) {
        let cp = cuda_conv_params(x.shape(), w.shape(), stride, padding)?;
        let bias = b.as_ref().map(|b| b.cuda_dense()).transpose()?;
        let y = cuda_conv::conv2d_fwd(x.cuda_dense()?, w.cuda_dense()?, bias, &cp)?;
        return Tensor::from_cuda(y, &shape);
    }
    let mut y = vec![0f32; numel(&shape)];
    cpu_conv::conv2d_fast(&p, x.cpu_f32()?, w.cpu_f32()?, b.as_ref().map(|b| b.cpu_f32()).transpose()?, &mut y);
    Tensor::from_vec(y, &shape)
}

/// Gradient of `conv2d` with respect to its input (`x_shape` is the input's shape).
pub fn conv2d_backward_input(x_shape: &[usize], w: &Tensor, grad_out: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = "conv2d_backward_input";
    let p = conv2d_params(op, x_shape, w.shape(), None, stride, padding)?;
    check_grad_shape(op, grad_out, conv_out_shape(&p))?;
    check_f32_same_device(op, &[grad_out, w])?;
    let (w, g) = (w.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let cp = cuda_conv_params(x_shape, w.shape(), stride, padding)?;
        return Tensor::from_cuda(cuda_convb::conv2d_bwd_input(w.cuda_dense()?, g.cuda_dense()?, &cp)?, x_shape);
    }
    let mut dx = vec![0f32; numel(x_shape)];
    cpu_conv::conv2d_backward_input_fast(&p, w.cpu_f32()?, g.cpu_f32()?, &mut dx);
    Tensor::from_vec(dx, x_shape)
}

/// Gradient of `conv2d` with respect to its weight (`w_shape` = `[O, C, kh, kw]`).
pub fn conv2d_backward_weight(x: &Tensor, w_shape: &[usize], grad_out: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = "conv2d_backward_weight";
    let p = conv2d_params(op, x.shape(), w_shape, None, stride, padding)?;
    check_grad_shape(op, grad_out, conv_out_shape(&p))?;
    check_f32_same_device(op, &[grad_out, x])?;
    let (x, g) = (x.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let cp = cuda_conv_params(x.shape(), w_shape, stride, padding)?;
        return Tensor::from_cuda(cuda_convb::conv2d_bwd_weight(x.cuda_dense()?, g.cuda_dense()?, &cp)?, w_shape);
    }
    let mut dw = vec![0f32; numel(w_shape)];
    cpu_conv::conv2d_backward_weight_fast(&p, x.cpu_f32()?, g.cpu_f32()?, &mut dw);
    Tensor::from_vec(dw, w_shape)
}

/// Bias gradient of either convolution: `grad_out [N, O, H, W]` summed over N, H, W -> `[O]`.
pub fn conv_backward_bias(grad_out: &Tensor) -> Result<Tensor> {
    let op = "conv_backward_bias";
    let [n, o, h, w] = dims4(op, "grad_out", "[N, C, H, W]", grad_out.shape())?;
    check_f32_same_device(op, &[grad_out])?;
    let g = grad_out.contiguous()?;
    if !super::is_cpu(&g) {
        return Tensor::from_cuda(cuda_convb::channel_sums(g.cuda_dense()?, n, o, h * w)?, &[o]);
    }
    let mut db = vec![0f32; o];
    cpu_conv::channel_sums(g.cpu_f32()?, n, o, h * w, &mut db);
    Tensor::from_vec(db, &[o])
}

/// All three gradients of `conv2d(x, w, b, ..)`: `(dx, dw, db)`.
pub fn conv2d_backward(x: &Tensor, w: &Tensor, grad_out: &Tensor, stride: usize, padding: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let dx = conv2d_backward_input(x.shape(), w, grad_out, stride, padding)?;
    let dw = conv2d_backward_weight(x, w.shape(), grad_out, stride, padding)?;
    Ok((dx, dw, conv_backward_bias(grad_out)?))
}

/// ConvTranspose2d: `x [N, C, H, W]`, `w [C, O, kh, kw]`, optional `b [O]` ->
/// `[N, O, (H-1)*stride - 2*padding + kh, (W-1)*stride - 2*padding + kw]`.
pub fn conv_transpose2d(x: &Tensor, w: &Tensor, b: Option<&Tensor>, stride: usize, padding: usize) -> Result<Tensor> {
    let p = conv_transpose2d_params("conv_transpose2d", x.shape(), w.shape(), b.map(|b| b.shape()), stride, padding)?;
    let mut inputs = vec![x, w];
    inputs.extend(b);
    check_f32_same_device("conv_transpose2d", &inputs)?;
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.map(|b| b.contiguous()).transpose()?);
    let shape = convt_out_shape(&p);
    if !super::is_cpu(&x) {
        let cs = cuda_convt_shape(x.shape(), w.shape(), stride, padding)?;
        let bias = b.as_ref().map(|b| b.cuda_dense()).transpose()?;
        return Tensor::from_cuda(cuda_convt::conv_transpose2d_fwd(x.cuda_dense()?, w.cuda_dense()?, bias, &cs)?, &shape);
    }
    let mut y = vec![0f32; numel(&shape)];
    cpu_convt::conv_transpose2d_fast(&p, x.cpu_f32()?, w.cpu_f32()?, b.as_ref().map(|b| b.cpu_f32()).transpose()?, &mut y);
    Tensor::from_vec(y, &shape)
}

/// Gradient of `conv_transpose2d` with respect to its input (`x_shape` is the input's shape).
pub fn conv_transpose2d_backward_input(x_shape: &[usize], w: &Tensor, grad_out: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_input";
    let p = conv_transpose2d_params(op, x_shape, w.shape(), None, stride, padding)?;
    check_grad_shape(op, grad_out, convt_out_shape(&p))?;
    check_f32_same_device(op, &[grad_out, w])?;
    let (w, g) = (w.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let cs = cuda_convt_shape(x_shape, w.shape(), stride, padding)?;
        return Tensor::from_cuda(cuda_convt::conv_transpose2d_bwd_input(w.cuda_dense()?, g.cuda_dense()?, &cs)?, x_shape);
    }
    let mut dx = vec![0f32; numel(x_shape)];
    cpu_convt::conv_transpose2d_backward_input_fast(&p, w.cpu_f32()?, g.cpu_f32()?, &mut dx);
    Tensor::from_vec(dx, x_shape)
}

/// Gradient of `conv_transpose2d` with respect to its weight (`w_shape` = `[C, O, kh, kw]`).
pub fn conv_transpose2d_backward_weight(x: &Tensor, w_shape: &[usize], grad_out: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let op = "conv_transpose2d_backward_weight";
    let p = conv_transpose2d_params(op, x.shape(), w_shape, None, stride, padding)?;
    check_grad_shape(op, grad_out, convt_out_shape(&p))?;
    check_f32_same_device(op, &[grad_out, x])?;
    let (x, g) = (x.contiguous()?, grad_out.contiguous()?);
    if !super::is_cpu(&g) {
        let cs = cuda_convt_shape(x.shape(), w_shape, stride, padding)?;
        return Tensor::from_cuda(cuda_convt::conv_transpose2d_bwd_weight(x.cuda_dense()?, g.cuda_dense()?, &cs)?, w_shape);
    }
    let mut dw = vec![0f32; numel(w_shape)];
    cpu_convt::conv_transpose2d_backward_weight_fast(&p, x.cpu_f32()?, g.cpu_f32()?, &mut dw);
    Tensor::from_vec(dw, w_shape)
}

/// All three gradients of `conv_transpose2d(x, w, b, ..)`: `(dx, dw, db)`.
pub fn conv_transpose2d_backward(x: &Tensor, w: &Tensor, grad_out: &Tensor, stride: usize, padding: usize) -> Result<(Tensor, Tensor, Tensor)> {
    let dx = conv_transpose2d_backward_input(x.shape(), w, grad_out, stride, padding)?;
    let dw = conv_transpose2d_backward_weight(x, w.shape(), grad_out, stride, padding)?;
    Ok((dx, dw, conv_backward_bias(grad_out)?))
}
