//! Parameters of a 2-D transposed convolution (PyTorch's ConvTranspose2d, output_padding 0,
//! groups 1, dilation 1) on NCHW tensors: `x [batch, in_channels, in_h, in_w]`, weight
//! `[in_channels, out_channels, kernel_h, kernel_w]` (**in before out**, PyTorch's layout,
//! spec §0), optional bias `[out_channels]`:
//! `y[n, o, ih*stride - pad + i, iw*stride - pad + j] += x[n,c,ih,iw] * w[c,o,i,j]` (positions
//! outside y dropped), `out_h = (in_h - 1)*stride_h - 2*pad_h + kernel_h` (likewise w).
//! It is the adjoint of the Conv2d that maps y's shape back to x's (`as_conv`), which is how
//! the CPU code computes it. Shared by the CPU code and the CUDA launcher.

use super::conv2d::Conv2dParams;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvTranspose2dParams {
    pub batch: u32,
    pub in_channels: u32,
    pub in_h: u32,
    pub in_w: u32,
    pub out_channels: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub kernel_h: u32,
    pub kernel_w: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    /// 1 when a bias is added.
    pub has_bias: u32,
}

impl ConvTranspose2dParams {
    /// Square stride and padding; the caller has checked that the output is non-empty.
    #[allow(clippy::too_many_arguments)]
    pub fn new(batch: usize, in_channels: usize, in_hw: (usize, usize), out_channels: usize, kernel: (usize, usize), stride: usize, pad: usize, has_bias: bool) -> Self {
        let out = |len: usize, k: usize| (len - 1) * stride + k - 2 * pad;
        ConvTranspose2dParams {
            batch: batch as u32,
            in_channels: in_channels as u32,
            in_h: in_hw.0 as u32,
            in_w: in_hw.1 as u32,
            out_channels: out_channels as u32,
            out_h: out(in_hw.0, kernel.0) as u32,
            out_w: out(in_hw.1, kernel.1) as u32,
            kernel_h: kernel.0 as u32,
            kernel_w: kernel.1 as u32,
            stride_h: stride as u32,
            stride_w: stride as u32,
            pad_h: pad as u32,
            pad_w: pad as u32,
            has_bias: has_bias as u32,
        }
    }
    /// The Conv2d whose input has y's shape and whose output has x's shape, with weight
    /// `[in_channels, out_channels, kh, kw]` read as a conv weight `[conv_out, conv_in, kh, kw]`.
    /// ConvTranspose2d(x) = that conv's input gradient for output gradient x.
    pub fn as_conv(&self) -> Conv2dParams {
        Conv2dParams {
            batch: self.batch,
            in_channels: self.out_channels,
            in_h: self.out_h,
            in_w: self.out_w,
            out_channels: self.in_channels,
            out_h: self.in_h,
            out_w: self.in_w,
            kernel_h: self.kernel_h,
            kernel_w: self.kernel_w,
            stride_h: self.stride_h,
            stride_w: self.stride_w,
            pad_h: self.pad_h,
            pad_w: self.pad_w,
            has_bias: 0,
        }
    }
    pub fn in_image_len(&self) -> usize {
        (self.in_channels * self.in_h * self.in_w) as usize
    }
    pub fn out_image_len(&self) -> usize {
        (self.out_channels * self.out_h * self.out_w) as usize
    }
    pub fn weight_len(&self) -> usize {
        (self.in_channels * self.out_channels * self.kernel_h * self.kernel_w) as usize
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> f64 {
        self.as_conv().macs()
    }
}
