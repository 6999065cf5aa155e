//! Launchers for the 2-D transposed convolution (PyTorch's ConvTranspose2d, output_padding 0,
//! dilation 1, one group): input `x [n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]` (PyTorch's
//! layout, **in before out**), bias `[c_out]`, output `y [n, c_out, oh, ow]` with
//! `oh = (h - 1) * stride_h - 2 * pad_h + kh` (likewise w);
//! `y[n, o, ih*s - p + i, iw*s - p + j] += x[n, c, ih, iw] * w[c, o, i, j]`.
//! Spec §2.4: the decoder's 4x4 stride-2 pad-1 upsampling layers (256->256, 256->128, 128->64).
//!
//! No kernel of its own: a transposed convolution is the adjoint of the Conv2d `C` whose input
//! has y's shape and whose output has x's shape (`ConvTranspose2dShape::conv`), and the weight
//! `[c_in, c_out, kh, kw]` already is that conv's `[conv_out, conv_in, kh, kw]`, so every piece
//! is a conv2d kernel run on the same buffers with no copy or transpose:
//! * forward `y = C^T(x) + b`: `conv2d_bwd_input_f32` with x as the output gradient and the bias
//!   added per conv input channel (a gather over the taps that reach each output pixel: no atomics);
//! * input gradient `dx = C(g)`: `conv2d_fwd_f32` of g, no bias;
//! * weight gradient `dw[c, o, i, j] = sum x[n,c,ih,iw] g[n,o,..]`: `conv2d_bwd_weight_f32` (split-K,
//!   fixed-order sum) with g as the conv input and x as the conv output gradient;
//! * bias gradient `db[o] = sum g[n, o, :, :]`: `conv2d_bwd_bias_f32`.

use super::conv2d::{conv2d_fwd_launch, Conv2dParams};
use super::conv2d_backward::{
    check_storage, conv2d_bwd_bias_launch, conv2d_bwd_input_launch, conv2d_bwd_weight_launch,
    conv2d_bwd_weight_sum_launch, run_weight_grad,
};
use crate::cuda::launch::{device_ptr, run_on_device, Launch};
use crate::cuda::CudaStorage;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A transposed convolution, held as its adjoint Conv2d (`conv`): conv input = y, conv output =
/// x, conv weight = the transposed convolution's weight read as `[c_in, c_out, kh, kw]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dShape {
    pub conv: Conv2dParams,
}

impl ConvTranspose2dShape {
    /// Input `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]`, (stride, padding) as (h, w) pairs.
    /// Errors on a channel mismatch, a zero stride, or an empty output.
    pub fn new(
        input: [usize; 4],
        weight: [usize; 4],
        stride: (usize, usize),
        pad: (usize, usize),
    ) -> Result<Self> {
        let [n, c_in, h, w] = input;
        let [wc_in, c_out, kh, kw] = weight;
        let out = |len: usize, k: usize, s: usize, p: usize| {
            ((len.max(1) - 1) * s + k)
                .checked_sub(2 * p)
                .filter(|&o| o > 0)
        };
        let bad = || {
            Error::shape("conv_transpose2d", format!("input {input:?} with weight {weight:?} (in, out, kh, kw), stride {stride:?}, padding {pad:?}"))
        };
        if wc_in != c_in || h == 0 || w == 0 || stride.0 == 0 || stride.1 == 0 {
            return Err(bad());
        }
        let (Some(oh), Some(ow)) = (out(h, kh, stride.0, pad.0), out(w, kw, stride.1, pad.1))
        else {
            return Err(bad());
        };
        let conv = Conv2dParams::new(
            [n, c_out, oh, ow],
            [c_in, c_out, kh, kw],
            stride,
            pad,
            (1, 1),
        )
        .map_err(|_| bad())?;
        debug_assert_eq!((conv.oh as usize, conv.ow as usize), (h, w));
        Ok(ConvTranspose2dShape { conv })
    }
    /// Elements of x `[n, c_in, h, w]`.
    pub fn input_len(&self) -> usize {
        self.conv.output_len()
    }
    /// Elements of y `[n, c_out, oh, ow]`.
    pub fn output_len(&self) -> usize {
        self.conv.input_len()
    }
    pub fn weight_len(&self) -> usize {
        self.conv.weight_len()
    }
    /// (oh, ow) of y.
    pub fn output_hw(&self) -> (usize, usize) {
        (self.conv.h as usize, self.conv.w as usize)
    }
    pub fn out_channels(&self) -> usize {
        self.conv.c as usize
    }
}

/// y = conv_transpose2d(x, w) (+ bias when `bias` != 0).
pub fn conv_transpose2d_fwd_launch(
    y: u64,
    x: u64,
    w: u64,
    bias: u64,
    s: &ConvTranspose2dShape,
) -> Launch {
    conv2d_bwd_input_launch(y, x, w, bias, &s.conv)
}

/// dx `[n, c_in, h, w]` from the output gradient g `[n, c_out, oh, ow]`.
pub fn conv_transpose2d_bwd_input_launch(
    dx: u64,
    g: u64,
    w: u64,
    s: &ConvTranspose2dShape,
) -> Launch {
    conv2d_fwd_launch(dx, g, w, 0, &s.conv)
}

/// The weight gradient's partial sums (`splits * weight_len` floats; dw itself when one split),
/// with (splits, chunk) from `conv2d_backward::weight_grad_splits(&s.conv)`.
pub fn conv_transpose2d_bwd_weight_launch(
    part: u64,
    x: u64,
    g: u64,
    s: &ConvTranspose2dShape,
    splits: u32,
    chunk: u32,
) -> Launch {
    conv2d_bwd_weight_launch(part, g, x, &s.conv, splits, chunk)
}

/// The fixed-order sum of the weight gradient's partials (only when splits > 1).
pub fn conv_transpose2d_bwd_weight_sum_launch(
    dw: u64,
    part: u64,
    s: &ConvTranspose2dShape,
    splits: u32,
) -> Launch {
    conv2d_bwd_weight_sum_launch(dw, part, s.weight_len() as u32, splits)
}

/// db `[c_out]` from g `[n, c_out, oh, ow]`.
pub fn conv_transpose2d_bwd_bias_launch(db: u64, g: u64, s: &ConvTranspose2dShape) -> Launch {
    let c = &s.conv;
    conv2d_bwd_bias_launch(db, g, c.n, c.c, c.h * c.w)
}

/// y `[n, c_out, oh, ow]` from x `[n, c_in, h, w]`, weight `[c_in, c_out, kh, kw]`, bias `[c_out]`.
pub fn conv_transpose2d_fwd(
    x: &CudaStorage,
    w: &CudaStorage,
    bias: Option<&CudaStorage>,
    s: &ConvTranspose2dShape,
) -> Result<CudaStorage> {
    const OP: &str = "conv_transpose2d";
    check_storage(OP, "input", x, s.input_len())?;
    check_storage(OP, "weight", w, s.weight_len())?;
    if let Some(b) = bias {
        check_storage(OP, "bias", b, s.out_channels())?;
    }
    let y = x.device().alloc(DType::F32, s.output_len())?;
    let bias_ptr = bias.map_or(0, |b| device_ptr(b, 0));
    let launch = conv_transpose2d_fwd_launch(
        device_ptr(&y, 0),
        device_ptr(x, 0),
        device_ptr(w, 0),
        bias_ptr,
        s,
    );
    run_on_device(x.device(), &launch)?;
    Ok(y)
}

/// dx `[n, c_in, h, w]` from the weight and the output gradient g `[n, c_out, oh, ow]`.
pub fn conv_transpose2d_bwd_input(
    w: &CudaStorage,
    g: &CudaStorage,
    s: &ConvTranspose2dShape,
) -> Result<CudaStorage> {
    const OP: &str = "conv_transpose2d_backward_input";
    check_storage(OP, "weight", w, s.weight_len())?;
    check_storage(OP, "output gradient", g, s.output_len())?;
    let dx = w.device().alloc(DType::F32, s.input_len())?;
    let launch = conv_transpose2d_bwd_input_launch(
        device_ptr(&dx, 0),
        device_ptr(g, 0),
        device_ptr(w, 0),
        s,
    );
    run_on_device(w.device(), &launch)?;
    Ok(dx)
}

/// dw `[c_in, c_out, kh, kw]` from x `[n, c_in, h, w]` and g `[n, c_out, oh, ow]`.
pub fn conv_transpose2d_bwd_weight(
    x: &CudaStorage,
    g: &CudaStorage,
    s: &ConvTranspose2dShape,
) -> Result<CudaStorage> {
    const OP: &str = "conv_transpose2d_backward_weight";
    check_storage(OP, "input", x, s.input_len())?;
    check_storage(OP, "output gradient", g, s.output_len())?;
    // The adjoint conv's weight gradient, with g as its input and x as its output gradient.
    run_weight_grad(OP, g, x, &s.conv)
}

/// db `[c_out]`: the per-channel sums of g `[n, c_out, oh, ow]`.
pub fn conv_transpose2d_bwd_bias(g: &CudaStorage, s: &ConvTranspose2dShape) -> Result<CudaStorage> {
    check_storage(
        "conv_transpose2d_backward_bias",
        "output gradient",
        g,
        s.output_len(),
    )?;
    let db = g.device().alloc(DType::F32, s.out_channels())?;
    run_on_device(
        g.device(),
        &conv_transpose2d_bwd_bias_launch(device_ptr(&db, 0), device_ptr(g, 0), s),
    )?;
    Ok(db)
}
